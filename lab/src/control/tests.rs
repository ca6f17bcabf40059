use super::*;

#[tokio::test]
async fn a_request_gets_the_handlers_reply_and_garbage_a_clear_refusal() {
    let dir = std::env::temp_dir().join(format!("mesh-lab-control-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("supervisor.sock");
    let listener = bind(&path).unwrap();
    let server = tokio::spawn(serve(listener, |request| async move {
        match request {
            Request::Scale { replicas: 0, .. } => Reply::Failed("zero".to_owned()),
            Request::Scale {
                namespace,
                deployment,
                replicas,
            } => Reply::Done(format!("{namespace}/{deployment} at {replicas}")),
        }
    }));
    let scale = |replicas| Request::Scale {
        namespace: "shop".to_owned(),
        deployment: "web".to_owned(),
        replicas,
    };
    let client = path.clone();
    let replies = tokio::task::spawn_blocking(move || {
        let done = send(&client, &scale(3)).unwrap();
        let failed = send(&client, &scale(0)).unwrap();
        let mut raw = std::os::unix::net::UnixStream::connect(&client).unwrap();
        raw.write_all(b"{\"explode\": true}\n").unwrap();
        let mut line = String::new();
        BufReader::new(raw).read_line(&mut line).unwrap();
        (done, failed, line)
    })
    .await
    .unwrap();
    assert_eq!(replies.0, Reply::Done("shop/web at 3".to_owned()));
    assert_eq!(replies.1, Reply::Failed("zero".to_owned()));
    let garbage: Reply = serde_json::from_str(&replies.2).unwrap();
    assert!(
        matches!(&garbage, Reply::Failed(why) if why.contains("not a request")),
        "{garbage:?}"
    );
    server.abort();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn no_supervisor_is_an_error_that_says_so() {
    let error = send(
        Path::new("/nonexistent/mesh-lab/supervisor.sock"),
        &Request::Scale {
            namespace: "a".to_owned(),
            deployment: "b".to_owned(),
            replicas: 1,
        },
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("cannot reach the lab's supervisor"),
        "{error}"
    );
}
