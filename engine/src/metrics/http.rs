//! A minimal HTTP/1.1 responder for `GET` requests, run as a task on one core.
//!
//! One request per connection (`Connection: close`): the request head is read up to
//! [`MAX_HEAD`] bytes or [`READ_TIMEOUT`]; any method but GET is answered 405 and an unparsable
//! head 400. [`serve`] answers `GET /metrics` (any query string) with the rendered exposition and
//! any other path 404; [`serve_with`] hands every GET target to a handler (the broker's console).
//! Nothing else of HTTP is implemented; a scraper and the console page need nothing else.

use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use tern_net::transport::StopSignal;

use super::text::CONTENT_TYPE;

/// Largest request head read.
pub const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// What a request head asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /metrics`.
    Metrics,
    /// A GET of another path.
    NotFound,
    /// Another method.
    MethodNotAllowed,
    /// Not an HTTP request line.
    BadRequest,
}

/// Classifies a request by its first line (`METHOD target HTTP/x.y`).
pub fn route(head: &[u8]) -> Route {
    match get_target(head) {
        Ok(target) if target.split('?').next() == Some("/metrics") => Route::Metrics,
        Ok(_) => Route::NotFound,
        Err(r) => r,
    }
}

/// The target (path and query) of a GET request line; `Err` is [`Route::MethodNotAllowed`] or
/// [`Route::BadRequest`].
pub fn get_target(head: &[u8]) -> Result<&str, Route> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let Ok(line) = std::str::from_utf8(line) else {
        return Err(Route::BadRequest);
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(Route::BadRequest);
    };
    if parts.next().is_some() || !version.starts_with("HTTP/1.") {
        return Err(Route::BadRequest);
    }
    if method != "GET" {
        return Err(Route::MethodNotAllowed);
    }
    Ok(target)
}

/// A response: status line text, `Content-Type`, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code and reason, e.g. `"200 OK"`.
    pub status: &'static str,
    /// The `Content-Type` header value.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A 200 response.
    pub fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status: "200 OK",
            content_type,
            body: body.into(),
        }
    }

    /// A plain-text response with `status`.
    pub fn text(status: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

/// Serves `listener` until `stop` is raised; each `GET /metrics` awaits `render()`.
pub async fn serve<F, Fut>(listener: TcpListener, stop: StopSignal, render: F)
where
    F: Fn() -> Fut + 'static,
    Fut: Future<Output = String> + 'static,
{
    let render = Rc::new(render);
    serve_with(listener, stop, move |target: String| {
        let render = Rc::clone(&render);
        async move {
            if target.split('?').next() == Some("/metrics") {
                Response::ok(CONTENT_TYPE, render().await)
            } else {
                Response::text("404 Not Found", "not found; try /metrics\n")
            }
        }
    })
    .await
}

/// Serves `listener` until `stop` is raised; each GET awaits `handler(target)`, the target being
/// the request line's path and query as sent (not decoded).
pub async fn serve_with<H, Fut>(listener: TcpListener, stop: StopSignal, handler: H)
where
    H: Fn(String) -> Fut + 'static,
    Fut: Future<Output = Response> + 'static,
{
    let handler = Rc::new(handler);
    loop {
        match stop.accept(&listener).await {
            None => return,
            Some(Ok(stream)) => {
                let handler = Rc::clone(&handler);
                tern_runtime::spawn_local(async move {
                    if let Err(e) = answer(stream, handler.as_ref()).await {
                        tracing::debug!("metrics request: {e}");
                    }
                })
                .detach();
            }
            Some(Err(e)) => {
                tracing::warn!("metrics accept: {e}");
                tern_runtime::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn read_head(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    Ok(head)
}

async fn answer<H, Fut>(mut stream: TcpStream, handler: &H) -> std::io::Result<()>
where
    H: Fn(String) -> Fut,
    Fut: Future<Output = Response>,
{
    let head = tern_runtime::timeout(READ_TIMEOUT, read_head(&mut stream))
        .await
        .unwrap_or_else(|| Err(std::io::ErrorKind::TimedOut.into()))?;
    let response = match get_target(&head) {
        Ok(target) => handler(target.to_string()).await,
        Err(Route::MethodNotAllowed) => Response::text("405 Method Not Allowed", "GET only\n"),
        Err(_) => Response::text("400 Bad Request", "bad request\n"),
    };
    let mut out = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
         X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n\
         Connection: close\r\n\r\n",
        response.status,
        response.content_type,
        response.body.len()
    )
    .into_bytes();
    out.extend_from_slice(&response.body);
    stream.write_all(&out).await?;
    stream.flush().await?;
    let _ = stream.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics
        );
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Route::Metrics);
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(
            route(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Route::MethodNotAllowed
        );
        for bad in [
            &b""[..],
            b"GET",
            b"GET /metrics",
            b"\xff\xfe",
            b"GET /metrics SPDY/3\r\n",
        ] {
            assert_eq!(route(bad), Route::BadRequest, "{bad:?}");
        }
    }
}
