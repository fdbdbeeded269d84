//! The pages the binary serves: the demo, the admin page, their assets, the client bundle, and
//! the development-only token endpoint.

use crate::common::{TestServer, repo};

async fn fetch(s: &TestServer, path: &str) -> (u16, String, Vec<u8>) {
    let r = reqwest::get(s.url(path)).await.unwrap();
    let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (r.status().as_u16(), ct, r.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn the_demo_the_admin_page_and_the_client_bundle_are_served_from_the_binary() {
    let s = TestServer::start().await;
    let (status, ct, body) = fetch(&s, "/").await;
    assert_eq!((status, ct.starts_with("text/html")), (200, true));
    assert!(String::from_utf8_lossy(&body).contains("/assets/demo.js"), "the demo page loads its script");
    let (status, ct, _) = fetch(&s, "/admin").await;
    assert_eq!((status, ct.starts_with("text/html")), (200, true));
    let (status, ct, bundle) = fetch(&s, "/assets/switchyard-client.js").await;
    assert_eq!((status, ct.starts_with("text/javascript")), (200, true));
    assert_eq!(bundle, std::fs::read(repo().join("client/dist/index.js")).unwrap(), "the committed bundle");
    for (name, dir) in [("demo.js", "demo"), ("demo.css", "demo"), ("admin.js", "admin"), ("admin.css", "admin")] {
        let (status, _, body) = fetch(&s, &format!("/assets/{name}")).await;
        assert_eq!(status, 200, "{name}");
        assert_eq!(body, std::fs::read(repo().join("web").join(dir).join(name)).unwrap(), "{name}");
    }
    let demo = fetch(&s, "/assets/demo.js").await.2;
    assert!(String::from_utf8_lossy(&demo).contains("/assets/switchyard-client.js"), "the demo uses the client");
    assert_eq!(fetch(&s, "/assets/..%2FCargo.toml").await.0, 404, "names, never paths");
    assert_eq!(fetch(&s, "/assets/missing.js").await.0, 404);
}

#[tokio::test]
async fn dev_tokens_exist_only_while_the_dev_secret_is_in_force() {
    let s = TestServer::start().await;
    let (status, _, body) = fetch(&s, "/dev/token?user=alice").await;
    assert_eq!(status, 200);
    let token = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["token"].as_str().unwrap().to_string();
    assert_eq!(&*s.auth.verify(&token).unwrap().user, "alice");
    assert_eq!(fetch(&s, "/dev/token?user=").await.0, 400);

    let prod = TestServer::with(crate::common::ECHO_MANIFEST, &[("echo.wat", &crate::common::wat("echo.wat"))], |c| {
        c.auth.secret = Some("a real secret of reasonable length".into());
    })
    .await;
    assert_eq!(fetch(&prod, "/dev/token?user=alice").await.0, 404);
}
