//! Hot reload: watches the manifest and module files and triggers a reload of the [`Table`].
//!
//! Owns the `notify` watcher and its debouncing. It must never compile or swap anything
//! itself: it only notices changes and asks the table, which does the work off the hot path.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher};

use super::table::Table;

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

/// Whether an event may have changed a file: anything but opening, reading or closing it
/// unwritten.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// Starts the watcher task. Folders are watched (not files), so editors and `mv`-over writes,
/// which replace the file, are seen too. Only changes count: opening or reading a file (which
/// every reload does) is not a change, or each reload would trigger the next. The task holds
/// the table weakly and ends with it (or at `stop`), dropping the watcher.
pub(super) fn spawn(
    table: &Arc<Table>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    debounce: Duration,
) -> anyhow::Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<PathBuf>>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
        Ok(event) if is_change(&event.kind) => {
            let _ = tx.send(event.paths);
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("file watcher: {e}"),
    })?;
    let (mut dirs, mut names) = dirs_and_names(&table.watched_files());
    for d in &dirs {
        watcher.watch(d, RecursiveMode::NonRecursive)?;
    }
    let weak: Weak<Table> = Arc::downgrade(table);
    tokio::spawn(async move {
        loop {
            let mut paths = tokio::select! {
                p = rx.recv() => match p { Some(p) => p, None => break },
                _ = stop.wait_for(|s| *s) => break,
            };
            // Debounce: a write is often several events (truncate, write, close, rename);
            // wait until the files have been quiet for `debounce`, then reload once.
            while let Ok(Some(more)) = tokio::time::timeout(debounce, rx.recv()).await {
                paths.extend(more);
            }
            if !paths.iter().any(|p| p.file_name().is_some_and(|n| names.contains(n))) {
                continue;
            }
            let Some(rt) = weak.upgrade() else { break };
            tracing::info!("handler files changed, reloading");
            // Without waiting for its compiles: a slow one must not hold up the next change.
            rt.begin_reload().await;
            // Module paths may have changed with the manifest: follow them.
            let (new_dirs, new_names) = dirs_and_names(&rt.watched_files());
            for d in new_dirs.difference(&dirs) {
                if let Err(e) = watcher.watch(d, RecursiveMode::NonRecursive) {
                    tracing::warn!(dir = %d.display(), "cannot watch: {e}");
                }
            }
            for d in dirs.difference(&new_dirs) {
                let _ = watcher.unwatch(d);
            }
            (dirs, names) = (new_dirs, new_names);
        }
    });
    Ok(())
}
