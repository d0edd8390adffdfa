//! Webhook deliveries over real sockets: what is refused never opens a
//! connection, redirects are answers, long answers are cut, slow ones time
//! out. The pure address rules are unit tests in `webhooks/outbound.rs`.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::{Body, Bytes},
    http::{HeaderMap, StatusCode, header},
    response::IntoResponse,
    routing::post,
};
use futures::StreamExt;
use jeton::webhooks::outbound::{
    AddressPolicy, DeliveryError, MAX_RESPONSE_BODY, Outbound, OutboundConfig, UrlError,
    WebhookUrl, deliver,
};
use tokio::net::TcpListener;

// ---------------------------------------------------------------- helpers

/// Serves `app` on 127.0.0.1 and returns its port.
async fn serve(app: Router) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

fn open_client() -> Outbound {
    Outbound::new(OutboundConfig::with_policy(
        AddressPolicy::AllowHttpAndPrivate,
    ))
    .unwrap()
}

fn public_client() -> Outbound {
    Outbound::new(OutboundConfig::default()).unwrap()
}

fn open_url(text: &str) -> WebhookUrl {
    WebhookUrl::parse(text, AddressPolicy::AllowHttpAndPrivate).unwrap()
}

/// Asserts that nothing connected to `listener`: a connection attempt would
/// have completed its handshake into the backlog before `deliver` returned.
async fn assert_never_connected(listener: &TcpListener) {
    let accepted = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
    assert!(accepted.is_err(), "something connected: {accepted:?}");
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn a_delivery_posts_the_body_and_headers_and_reads_the_answer() {
    let seen: Arc<Mutex<Vec<(HeaderMap, Bytes)>>> = Arc::default();
    let recorded = seen.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| async move {
            recorded.lock().unwrap().push((headers, body));
            (StatusCode::ACCEPTED, "thanks ✓")
        }),
    );
    let port = serve(app).await;
    // A name, so the checked resolver is on the path.
    let url = open_url(&format!("http://localhost:{port}/hook"));
    let headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("webhook-id".to_owned(), "msg_1".to_owned()),
    ];
    let response = deliver(&open_client(), &url, &headers, br#"{"type":"x"}"#.to_vec())
        .await
        .unwrap();
    assert_eq!(response.status, 202);
    assert_eq!(response.body_text, "thanks ✓");
    assert!(!response.truncated);
    assert_eq!(response.body_error, None);

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let (headers, body) = &seen[0];
    assert_eq!(&body[..], br#"{"type":"x"}"#);
    assert_eq!(headers["webhook-id"], "msg_1");
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert!(
        headers[header::USER_AGENT]
            .to_str()
            .unwrap()
            .starts_with("Jeton-Webhooks/")
    );
}

#[tokio::test]
async fn a_name_that_resolves_to_loopback_is_refused_without_a_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // A host name passes the creation check; the address is only known at delivery.
    let url = WebhookUrl::parse(
        &format!("https://localhost:{port}/hook"),
        AddressPolicy::Public,
    )
    .unwrap();
    let error = deliver(&public_client(), &url, &[], b"{}".to_vec())
        .await
        .unwrap_err();
    assert_eq!(
        error,
        DeliveryError::NonPublicResolution {
            host: "localhost".into()
        }
    );
    assert!(error.is_refused());
    assert_eq!(
        error.to_string(),
        "refused: localhost resolves to a non-public address"
    );
    assert_never_connected(&listener).await;

    // The same listener does see a delivery that is allowed to connect, so the
    // silence above is the rule at work.
    let open = Outbound::new(OutboundConfig {
        timeout: Duration::from_secs(1),
        ..OutboundConfig::with_policy(AddressPolicy::AllowHttpAndPrivate)
    })
    .unwrap();
    let allowed = open_url(&format!("http://localhost:{port}/hook"));
    let sending = tokio::spawn(async move { deliver(&open, &allowed, &[], Vec::new()).await });
    let accepted = tokio::time::timeout(Duration::from_secs(1), listener.accept()).await;
    assert!(matches!(accepted, Ok(Ok(_))), "{accepted:?}");
    drop(accepted);
    let _ = sending.await;
}

#[tokio::test]
async fn a_private_literal_or_http_url_stored_under_the_open_policy_is_refused_at_delivery() {
    // URLs accepted while the server ran with --webhook-allow-http-private, then
    // delivered by a server without it.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let client = public_client();
    for (text, expected) in [
        (
            format!("https://127.0.0.1:{port}/"),
            UrlError::NonPublicAddress("127.0.0.1".parse().unwrap()),
        ),
        (
            format!("https://[::ffff:127.0.0.1]:{port}/"),
            UrlError::NonPublicAddress("::ffff:127.0.0.1".parse().unwrap()),
        ),
        (format!("http://localhost:{port}/"), UrlError::NotHttps),
    ] {
        let url = open_url(&text);
        let error = deliver(&client, &url, &[], Vec::new()).await.unwrap_err();
        assert_eq!(error, DeliveryError::Refused(expected), "{text}");
        assert!(error.is_refused());
    }
    assert_never_connected(&listener).await;
}

#[tokio::test]
async fn http_is_refused_under_the_public_policy_and_delivered_under_the_open_one() {
    let app = Router::new().route("/", post(|| async { "ok" }));
    let port = serve(app).await;
    let text = format!("http://127.0.0.1:{port}/");
    assert_eq!(
        WebhookUrl::parse(&text, AddressPolicy::Public),
        Err(UrlError::NotHttps)
    );
    let url = WebhookUrl::parse(&text, AddressPolicy::AllowHttpAndPrivate).unwrap();
    let response = deliver(&open_client(), &url, &[], Vec::new())
        .await
        .unwrap();
    assert_eq!((response.status, response.body_text.as_str()), (200, "ok"));
}

#[tokio::test]
async fn redirects_are_answers_and_not_followed() {
    let target_hits = Arc::new(AtomicUsize::new(0));
    let hits = target_hits.clone();
    let target = Router::new().fallback(move || async move {
        hits.fetch_add(1, Ordering::SeqCst);
        "target"
    });
    let target_port = serve(target).await;
    let location = format!("http://127.0.0.1:{target_port}/elsewhere");
    let redirecting = Router::new().route(
        "/hook",
        post(move || async move {
            (
                StatusCode::FOUND,
                [(header::LOCATION, location.clone())],
                "moved",
            )
        }),
    );
    let port = serve(redirecting).await;
    let url = open_url(&format!("http://127.0.0.1:{port}/hook"));
    for _ in 0..2 {
        let response = deliver(&open_client(), &url, &[], b"{}".to_vec())
            .await
            .unwrap();
        assert_eq!(response.status, 302);
        assert_eq!(response.body_text, "moved");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(target_hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_answer_over_64_kib_is_cut_at_64_kib() {
    let app = Router::new()
        .route("/big", post(|| async { "é".repeat(100 * 1024) }))
        .route("/exact", post(|| async { "x".repeat(MAX_RESPONSE_BODY) }))
        .route(
            "/endless",
            post(|| async {
                // Never ends: reading must stop at the limit, not at the deadline.
                let chunk = Bytes::from(vec![b'z'; 1000]);
                let stream = futures::stream::repeat_with(move || {
                    Ok::<_, std::convert::Infallible>(chunk.clone())
                });
                Body::from_stream(stream).into_response()
            }),
        );
    let port = serve(app).await;
    let client = open_client();

    let big = deliver(
        &client,
        &open_url(&format!("http://127.0.0.1:{port}/big")),
        &[],
        vec![],
    )
    .await
    .unwrap();
    assert!(big.truncated);
    assert_eq!(big.status, 200);
    // "é" is two bytes: 32 Ki of them fill the limit exactly.
    assert_eq!(big.body_text, "é".repeat(MAX_RESPONSE_BODY / 2));

    let exact = deliver(
        &client,
        &open_url(&format!("http://127.0.0.1:{port}/exact")),
        &[],
        vec![],
    )
    .await
    .unwrap();
    assert!(!exact.truncated);
    assert_eq!(exact.body_text.len(), MAX_RESPONSE_BODY);

    let started = Instant::now();
    let endless = deliver(
        &client,
        &open_url(&format!("http://127.0.0.1:{port}/endless")),
        &[],
        vec![],
    )
    .await
    .unwrap();
    assert!(endless.truncated);
    assert_eq!(endless.body_error, None);
    assert_eq!(endless.body_text, "z".repeat(MAX_RESPONSE_BODY));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_cut_in_the_middle_of_a_character_is_shown_lossily() {
    let app = Router::new().route("/", post(|| async { format!("a{}", "é".repeat(40_000)) }));
    let port = serve(app).await;
    let response = deliver(
        &open_client(),
        &open_url(&format!("http://127.0.0.1:{port}/")),
        &[],
        vec![],
    )
    .await
    .unwrap();
    assert!(response.truncated);
    assert!(response.body_text.starts_with("aé"));
    assert!(response.body_text.ends_with('\u{FFFD}'));
}

#[tokio::test]
async fn a_slow_receiver_times_out_at_the_deadline() {
    let app = Router::new().route(
        "/",
        post(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "late"
        }),
    );
    let port = serve(app).await;
    let client = Outbound::new(OutboundConfig {
        timeout: Duration::from_secs(1),
        ..OutboundConfig::with_policy(AddressPolicy::AllowHttpAndPrivate)
    })
    .unwrap();
    let started = Instant::now();
    let error = deliver(
        &client,
        &open_url(&format!("http://127.0.0.1:{port}/")),
        &[],
        vec![],
    )
    .await
    .unwrap_err();
    let took = started.elapsed();
    assert_eq!(error, DeliveryError::Timeout(Duration::from_secs(1)));
    assert_eq!(error.to_string(), "timed out after 1 s");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_body_that_stalls_after_the_status_keeps_the_status() {
    let app = Router::new().route(
        "/",
        post(|| async {
            let stream = futures::stream::once(async {
                Ok::<_, std::convert::Infallible>(Bytes::from_static(b"partial"))
            })
            .chain(futures::stream::once(async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(Bytes::from_static(b"never"))
            }));
            Body::from_stream(stream).into_response()
        }),
    );
    let port = serve(app).await;
    let client = Outbound::new(OutboundConfig {
        timeout: Duration::from_secs(1),
        ..OutboundConfig::with_policy(AddressPolicy::AllowHttpAndPrivate)
    })
    .unwrap();
    let response = deliver(
        &client,
        &open_url(&format!("http://127.0.0.1:{port}/")),
        &[],
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body_text, "partial");
    assert!(!response.truncated);
    assert_eq!(response.body_error.as_deref(), Some("timed out after 1 s"));
}

#[tokio::test]
async fn a_closed_port_is_a_connect_error_and_an_unknown_name_a_resolve_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let error = deliver(
        &open_client(),
        &open_url(&format!("http://127.0.0.1:{port}/")),
        &[],
        vec![],
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&error, DeliveryError::Connect(message) if message.contains("refused")),
        "{error:?}"
    );
    assert!(!error.is_refused());

    // RFC 6761 reserves .invalid: it never resolves.
    let error = deliver(
        &public_client(),
        &WebhookUrl::parse("https://hooks.example.invalid/", AddressPolicy::Public).unwrap(),
        &[],
        vec![],
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&error, DeliveryError::Resolve { host, .. } if host == "hooks.example.invalid"),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_bad_header_is_refused_before_sending() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = open_url(&format!("http://127.0.0.1:{port}/"));
    for header in [("bad name", "v"), ("webhook-id", "line\nbreak")] {
        let headers = vec![(header.0.to_owned(), header.1.to_owned())];
        let error = deliver(&open_client(), &url, &headers, vec![])
            .await
            .unwrap_err();
        assert_eq!(error, DeliveryError::InvalidHeader(header.0.to_owned()));
    }
    assert_never_connected(&listener).await;
}

#[tokio::test]
async fn https_goes_through_tls_and_checks_the_certificate() {
    // A plain HTTP server where TLS is expected: the handshake fails, cleanly.
    let app = Router::new().route("/", post(|| async { "plain" }));
    let port = serve(app).await;
    let error = deliver(
        &open_client(),
        &open_url(&format!("https://127.0.0.1:{port}/")),
        &[],
        vec![],
    )
    .await
    .unwrap_err();
    assert!(matches!(error, DeliveryError::Connect(_)), "{error:?}");
}

#[tokio::test]
async fn a_connection_that_never_completes_hits_the_connect_timeout() {
    // A listener whose accept queue is full drops further SYNs, so the
    // handshake never completes.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let attempt = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200));
        if let Ok(stream) = attempt {
            fillers.push(stream);
        }
    }
    let client = Outbound::new(OutboundConfig {
        connect_timeout: Duration::from_millis(500),
        timeout: Duration::from_secs(5),
        ..OutboundConfig::with_policy(AddressPolicy::AllowHttpAndPrivate)
    })
    .unwrap();
    let started = Instant::now();
    let error = deliver(&client, &open_url(&format!("http://{addr}/")), &[], vec![])
        .await
        .unwrap_err();
    assert_eq!(
        error,
        DeliveryError::Connect("timed out after 0.5 s".to_owned())
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    drop(listener);
}
