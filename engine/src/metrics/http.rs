//! A minimal HTTP/1.1 responder for `GET /metrics`, run as a task on one core.
//!
//! One request per connection (`Connection: close`): the request head is read up to
//! [`MAX_HEAD`] bytes or [`READ_TIMEOUT`], `GET /metrics` (any query string) is answered 200 with
//! the rendered exposition, any other path 404, any other method 405, and an unparsable head 400.
//! Nothing else of HTTP is implemented; a scraper needs nothing else.

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
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let Ok(line) = std::str::from_utf8(line) else {
        return Route::BadRequest;
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if parts.next().is_some() || !version.starts_with("HTTP/1.") {
        return Route::BadRequest;
    }
    if method != "GET" {
        return Route::MethodNotAllowed;
    }
    match target.split('?').next() {
        Some("/metrics") => Route::Metrics,
        _ => Route::NotFound,
    }
}

/// Serves `listener` until `stop` is raised; each `GET /metrics` awaits `render()`.
pub async fn serve<F, Fut>(listener: TcpListener, stop: StopSignal, render: F)
where
    F: Fn() -> Fut + 'static,
    Fut: Future<Output = String> + 'static,
{
    let render = Rc::new(render);
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            stop.wait().await;
            None
        })
        .await;
        match accepted {
            None => return,
            Some(Ok(stream)) => {
                let render = Rc::clone(&render);
                tern_runtime::spawn_local(async move {
                    if let Err(e) = answer(stream, render.as_ref()).await {
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

async fn answer<F, Fut>(mut stream: TcpStream, render: &F) -> std::io::Result<()>
where
    F: Fn() -> Fut,
    Fut: Future<Output = String>,
{
    let head = tern_runtime::timeout(READ_TIMEOUT, read_head(&mut stream))
        .await
        .unwrap_or_else(|| Err(std::io::ErrorKind::TimedOut.into()))?;
    let (status, body) = match route(&head) {
        Route::Metrics => ("200 OK", render().await),
        Route::NotFound => ("404 Not Found", "not found; try /metrics\n".to_string()),
        Route::MethodNotAllowed => ("405 Method Not Allowed", "GET only\n".to_string()),
        Route::BadRequest => ("400 Bad Request", "bad request\n".to_string()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
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
