//! Hot reload: watches the manifest and module files and triggers `Runtime::reload`.
//!
//! Owns the `notify` watcher and its debouncing. It must never compile or swap anything
//! itself: it only notices changes and asks the runtime, which does the work off the hot path.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_mini::{DebounceEventResult, new_debouncer};

use super::Runtime;

fn dirs_and_names(files: &[PathBuf]) -> (HashSet<PathBuf>, HashSet<OsString>) {
    let mut dirs = HashSet::new();
    let mut names = HashSet::new();
    for f in files {
        let dir = f.parent().filter(|p| !p.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), PathBuf::from);
        dirs.insert(dir);
        if let Some(n) = f.file_name() {
            names.insert(n.to_os_string());
        }
    }
    (dirs, names)
}

/// Starts the watcher task. Folders are watched (not files), so editors and `mv`-over writes,
/// which replace the file, are seen too.
pub(super) fn spawn(rt: Arc<Runtime>, debounce: Duration) -> anyhow::Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<PathBuf>>();
    let mut debouncer = new_debouncer(debounce, move |res: DebounceEventResult| match res {
        Ok(events) => {
            let _ = tx.send(events.into_iter().map(|e| e.path).collect());
        }
        Err(e) => tracing::warn!("file watcher: {e}"),
    })?;
    let (mut dirs, mut names) = dirs_and_names(&rt.watched_files());
    for d in &dirs {
        debouncer.watcher().watch(d, RecursiveMode::NonRecursive)?;
    }
    let mut stop = rt.stop_signal();
    tokio::spawn(async move {
        loop {
            let mut paths = tokio::select! {
                p = rx.recv() => match p { Some(p) => p, None => break },
                _ = stop.wait_for(|s| *s) => break,
            };
            while let Ok(more) = rx.try_recv() {
                paths.extend(more);
            }
            if !paths.iter().any(|p| p.file_name().is_some_and(|n| names.contains(n))) {
                continue;
            }
            tracing::info!("handler files changed, reloading");
            rt.reload().await;
            // Module paths may have changed with the manifest: follow them.
            let (new_dirs, new_names) = dirs_and_names(&rt.watched_files());
            for d in new_dirs.difference(&dirs) {
                if let Err(e) = debouncer.watcher().watch(d, RecursiveMode::NonRecursive) {
                    tracing::warn!(dir = %d.display(), "cannot watch: {e}");
                }
            }
            for d in dirs.difference(&new_dirs) {
                let _ = debouncer.watcher().unwatch(d);
            }
            (dirs, names) = (new_dirs, new_names);
        }
    });
    Ok(())
}
