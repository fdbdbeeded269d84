//! Module files stay where the manifest is: a path (symlinks resolved) outside the manifest's
//! folder is refused unless `runtime.module_dirs` allows its folder, and load errors never
//! quote the file they read.

use std::os::unix::fs::symlink;

use serde_json::json;

use crate::common::*;

/// A file an attacker would like to see: its first line is what a WAT error used to quote.
const SECRET: &str = "root:x:0:0:SECRET-FIRST-LINE:/root:/bin/bash\ndaemon:x:1:1::/:/sbin/nologin\n";

fn echo_manifest(path: &str) -> String {
    format!(
        "[modules.echo]\npath = \"{path}\"\nprefixes = [\"echo\"]\n[[routes]]\nevent = \"echo\"\nmodule = \"echo\"\nexport = \"echo\"\n"
    )
}

async fn refusal_in(dir: tempfile::TempDir) -> String {
    let config = test_config(dir.path());
    match TestServer::try_in_dir(dir, config).await {
        Ok(_) => panic!("the server started; expected its module to be refused"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn a_module_symlinked_out_of_the_manifest_folder_is_refused_without_quoting_it() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("passwd"), SECRET).unwrap();
    let dir = dir_with(&echo_manifest("echo.wat"), &[]);
    symlink(outside.path().join("passwd"), dir.path().join("echo.wat")).unwrap();
    let err = refusal_in(dir).await;
    assert!(err.contains("outside the manifest's folder") && err.contains("runtime.module_dirs"), "{err}");
    assert!(!err.contains("SECRET") && !err.contains("root:x"), "{err}");
}

#[tokio::test]
async fn a_relative_path_out_of_the_manifest_folder_is_refused() {
    let parent = tempfile::tempdir().unwrap();
    std::fs::create_dir(parent.path().join("handlers")).unwrap();
    std::fs::write(parent.path().join("echo.wat"), wat("echo.wat")).unwrap();
    std::fs::write(parent.path().join("handlers/switchyard.toml"), echo_manifest("../echo.wat")).unwrap();
    let mut config = test_config(parent.path());
    config.runtime.manifest = parent.path().join("handlers/switchyard.toml");
    let err = TestServer::try_in_dir(tempfile::tempdir().unwrap(), config).await.err().expect("refused").to_string();
    assert!(err.contains("outside the manifest's folder"), "{err}");
}

#[tokio::test]
async fn a_hot_swap_to_a_symlink_outside_keeps_the_old_version_serving() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("passwd"), SECRET).unwrap();
    std::fs::write(outside.path().join("echo_v2.wat"), wat("echo_v2.wat")).unwrap();
    let s =
        TestServer::with(&echo_manifest("echo.wat"), &[("echo.wat", &wat("echo.wat"))], |c| c.runtime.watch = false)
            .await;
    let mut c = s.connect("alice").await;
    std::fs::remove_file(s.dir.path().join("echo.wat")).unwrap();
    symlink(outside.path().join("passwd"), s.dir.path().join("echo.wat")).unwrap();
    let (_, status) = s.post("/admin/reload", json!({})).await;
    let m = &status["modules"][0];
    let err = m["last_error"].as_str().unwrap();
    assert!(err.contains("outside the manifest's folder"), "{err}");
    assert!(!status.to_string().contains("SECRET"), "{status}");
    assert_eq!(m["generation"], 1, "the old version keeps serving");
    assert_eq!(c.request("echo", json!("still v1")).await["data"], "still v1");
    assert_eq!(s.metric("reload_failures_total").await, 1);
}

#[tokio::test]
async fn runtime_module_dirs_allows_another_folder() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("echo_v2.wat"), wat("echo_v2.wat")).unwrap();
    let dir = dir_with(&echo_manifest("echo.wat"), &[]);
    symlink(outside.path().join("echo_v2.wat"), dir.path().join("echo.wat")).unwrap();
    let allowed = outside.path().to_path_buf();
    let s = TestServer::in_dir(dir, |c| c.runtime.module_dirs = vec![allowed]).await;
    let mut c = s.connect("alice").await;
    assert_eq!(c.request("echo", json!(1)).await["data"], json!({"v": 2, "d": 1}));
}

#[tokio::test]
async fn load_errors_say_where_not_what() {
    let bad_wat = "(module\n  (memory (export \"memory\") 1)\n  SECRET-TOKEN-123 (func))\n";
    let err = TestServer::refusal(&echo_manifest("echo.wat"), &[("echo.wat", bad_wat)]).await;
    assert!(err.contains("echo.wat: invalid WAT at line 3, column 3"), "{err}");
    assert!(!err.contains("SECRET"), "{err}");
    let err = TestServer::refusal(&echo_manifest("echo.wasm"), &[("echo.wasm", SECRET)]).await;
    assert!(err.contains("echo.wasm: not a WebAssembly binary"), "{err}");
    assert!(!err.contains("SECRET") && !err.contains("root") && !err.contains("0x72"), "{err}");
}
