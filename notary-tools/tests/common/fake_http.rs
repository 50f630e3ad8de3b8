//! A plain-HTTP server whose answers a test writes: a hostile import source (endless bodies,
//! lying versions, a changefeed that never advances) or a proxy that edits what a real server
//! answers (a server that tampers with what `notary-rekey` signs).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use http_body_util::BodyExt;

/// What the fake server was asked.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub content_type: Option<String>,
    pub authorization: Option<String>,
    pub body: Vec<u8>,
}

/// What it answers.
pub(crate) enum Reply {
    /// A status, headers and a body.
    Bytes(u16, Vec<(String, String)>, Vec<u8>),
    /// 200 with a chunked body that never ends (spaces).
    Endless,
}

impl Reply {
    pub(crate) fn ok(body: impl Into<Vec<u8>>) -> Reply {
        Reply::Bytes(200, Vec::new(), body.into())
    }
    pub(crate) fn status(code: u16) -> Reply {
        Reply::Bytes(code, Vec::new(), Vec::new())
    }
}

pub(crate) type Handler = Arc<dyn Fn(Request) -> BoxFuture<'static, Reply> + Send + Sync>;

pub(crate) struct FakeHttp {
    pub url: String,
    /// Requests answered so far.
    pub hits: Arc<AtomicUsize>,
    _thread: std::thread::JoinHandle<()>,
}

type Body = http_body_util::combinators::BoxBody<bytes::Bytes, std::convert::Infallible>;

impl FakeHttp {
    pub(crate) fn start(handler: Handler) -> FakeHttp {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let thread = std::thread::spawn(move || {
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let (handler, counter) = (handler.clone(), counter.clone());
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let (handler, counter) = (handler.clone(), counter.clone());
                            async move {
                                counter.fetch_add(1, Ordering::SeqCst);
                                let header = |name: &str| {
                                    req.headers()
                                        .get(name)
                                        .and_then(|v| v.to_str().ok())
                                        .map(String::from)
                                };
                                let (method, path) = (
                                    req.method().to_string(),
                                    req.uri()
                                        .path_and_query()
                                        .map(|p| p.to_string())
                                        .unwrap_or_default(),
                                );
                                let (content_type, authorization) =
                                    (header("content-type"), header("authorization"));
                                let body = req
                                    .into_body()
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes().to_vec())
                                    .unwrap_or_default();
                                let reply = handler(Request {
                                    method,
                                    path,
                                    content_type,
                                    authorization,
                                    body,
                                })
                                .await;
                                Ok::<_, std::convert::Infallible>(response(reply))
                            }
                        },
                    );
                    tokio::spawn(
                        hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
                    );
                }
            })
        });
        FakeHttp {
            url,
            hits,
            _thread: thread,
        }
    }

    /// Requests answered so far.
    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn response(reply: Reply) -> hyper::Response<Body> {
    match reply {
        Reply::Bytes(status, headers, body) => {
            let mut b = hyper::Response::builder().status(status);
            for (k, v) in headers {
                b = b.header(k, v);
            }
            b.body(http_body_util::Full::new(bytes::Bytes::from(body)).boxed())
                .unwrap()
        }
        Reply::Endless => {
            let chunk = bytes::Bytes::from(vec![b' '; 64 << 10]);
            let stream = futures_util::stream::repeat_with(move || {
                Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(chunk.clone()))
            });
            hyper::Response::builder()
                .status(200)
                .body(BodyExt::boxed(http_body_util::StreamBody::new(stream)))
                .unwrap()
        }
    }
}

/// An edit of a real server's answer: (request, status, body) → (status, body).
pub(crate) type Edit = Arc<dyn Fn(&Request, u16, Vec<u8>) -> (u16, Vec<u8>) + Send + Sync>;

/// A plain-HTTP proxy to the HTTPS server `upstream` (trusting `ca`) that waits `delay` before
/// each answer and passes every answer through `edit`.
pub(crate) fn editing_proxy(
    upstream: &str,
    ca: &std::path::Path,
    delay: Duration,
    edit: Edit,
) -> FakeHttp {
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap())
        .build()
        .unwrap();
    let upstream = upstream.to_string();
    FakeHttp::start(Arc::new(move |req: Request| {
        let (client, upstream, edit) = (client.clone(), upstream.clone(), edit.clone());
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            let mut r = client.request(
                req.method.parse().unwrap(),
                format!("{upstream}{}", req.path),
            );
            if let Some(ct) = &req.content_type {
                r = r.header("content-type", ct);
            }
            if let Some(a) = &req.authorization {
                r = r.header("authorization", a);
            }
            let resp = r.body(req.body.clone()).send().await.unwrap();
            let status = resp.status().as_u16();
            let headers: Vec<(String, String)> = resp
                .headers()
                .iter()
                .filter(|(k, _)| *k == "www-authenticate" || *k == "content-type")
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
                .collect();
            let body = resp.bytes().await.unwrap().to_vec();
            let (status, body) = edit(&req, status, body);
            Reply::Bytes(status, headers, body)
        })
    }))
}
