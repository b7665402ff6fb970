//! Turning a [`Step`] into what the client sees: a delay, a closed connection, a scripted
//! status and body, or the normal answer with extra headers; for videos, a body cut short,
//! stalled or sent without a length.

use std::{sync::Arc, time::Duration};

use axum::{
    body::{Body, Bytes},
    extract::connect_info::Connected,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    serve::IncomingStream,
};
use futures::{Stream, StreamExt};
use tokio::net::TcpListener;

use super::script::Step;

/// The connection a request came on, so a step can close it without answering.
#[derive(Clone, Debug)]
pub struct Conn(Option<Arc<std::net::TcpStream>>);

impl Connected<IncomingStream<'_, TcpListener>> for Conn {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        #[cfg(unix)]
        {
            use std::os::fd::AsFd;
            Self(
                stream
                    .io()
                    .as_fd()
                    .try_clone_to_owned()
                    .ok()
                    .map(|fd| Arc::new(std::net::TcpStream::from(fd))),
            )
        }
        #[cfg(not(unix))]
        {
            let _ = stream;
            Self(None)
        }
    }
}

impl Conn {
    /// Closes the connection both ways: the client sees it end with no response.
    fn close(&self) {
        if let Some(socket) = &self.0 {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// What a step does before any answer: waits `delay_ms` (unless the delay is a video stall)
/// and, for `drop`, closes the connection. `Some` when the request is finished.
pub async fn before(step: &Step, conn: &Conn) -> Option<Response> {
    if step.delay_ms > 0 && step.stall_after.is_none() {
        tokio::time::sleep(Duration::from_millis(step.delay_ms)).await;
    }
    if step.drop {
        conn.close();
        // Nothing reaches the client any more; this only ends the handler.
        return Some(axum::http::StatusCode::BAD_GATEWAY.into_response());
    }
    None
}

/// The scripted status, body and headers of a custom step.
pub fn custom(step: &Step) -> Response {
    let (content_type, body) = step_body(step);
    let mut response = (step.status_code(), body).into_response();
    if let Some(ct) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    with_headers(step, response)
}

/// The step's own body and its content type; `None` when it has none.
pub fn step_body(step: &Step) -> (Option<&'static str>, Bytes) {
    if let Some(json) = &step.json {
        (
            Some("application/json"),
            Bytes::from(serde_json::to_vec(json).unwrap_or_default()),
        )
    } else if let Some(body) = &step.body {
        (Some("text/html; charset=utf-8"), Bytes::from(body.clone()))
    } else {
        (None, Bytes::new())
    }
}

/// Adds (or replaces) the step's headers.
pub fn with_headers(step: &Step, mut response: Response) -> Response {
    for (name, value) in step.header_pairs() {
        response.headers_mut().insert(name, value);
    }
    response
}

/// A video body shaped by a step: at most `truncate_at` bytes, a stall of `delay_ms` after
/// `stall_after` bytes. `len` is the full length, announced unless `no_content_length`; a body
/// cut short of an announced length, or cut with `abort`, makes the server close the
/// connection mid-body.
pub fn video_body<S>(step: &Step, len: u64, source: S) -> (Option<u64>, Body)
where
    S: Stream<Item = std::io::Result<Bytes>> + Send + Unpin + 'static,
{
    let announced = (!step.no_content_length).then_some(len);
    // Cut short of an announced length, the server closes the connection as soon as the body
    // ends, dropping what it has not flushed yet: wait a moment so the client gets exactly
    // `truncate_at` bytes.
    let cut = step.truncate_at.is_some_and(|at| at < len);
    let linger = (cut && (announced.is_some() || step.abort)).then_some(Duration::from_millis(200));
    let abort = cut && step.abort;
    let shape = Shape {
        linger,
        abort,
        sent: 0,
        limit: step.truncate_at,
        stall_at: step.stall_after,
        stall_for: Duration::from_millis(step.delay_ms),
        pending: None,
    };
    let stream = futures::stream::unfold((source, shape), |(mut source, mut s)| async move {
        loop {
            if s.limit.is_some_and(|l| s.sent >= l) {
                if let Some(linger) = s.linger.take() {
                    tokio::time::sleep(linger).await;
                }
                if std::mem::take(&mut s.abort) {
                    // A body error makes the server drop the connection mid-body.
                    let broken = std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "scripted abort",
                    );
                    return Some((Err(broken), (source, s)));
                }
                return None;
            }
            let chunk = match s.pending.take() {
                Some(chunk) => chunk,
                None => match source.next().await {
                    Some(Ok(chunk)) => chunk,
                    Some(Err(e)) => return Some((Err(e), (source, s))),
                    None => return None,
                },
            };
            if chunk.is_empty() {
                continue;
            }
            if s.stall_at.is_some_and(|at| s.sent >= at) {
                tokio::time::sleep(s.stall_for).await;
                s.stall_at = None;
            }
            let mut take = chunk.len() as u64;
            if let Some(limit) = s.limit {
                take = take.min(limit - s.sent);
            }
            if let Some(at) = s.stall_at {
                take = take.min(at - s.sent);
            }
            let mut head = chunk;
            let rest = head.split_off(take as usize);
            if !rest.is_empty() {
                s.pending = Some(rest);
            }
            s.sent += take;
            return Some((Ok(head), (source, s)));
        }
    });
    (announced, Body::from_stream(stream))
}

struct Shape {
    linger: Option<Duration>,
    abort: bool,
    sent: u64,
    limit: Option<u64>,
    stall_at: Option<u64>,
    stall_for: Duration,
    pending: Option<Bytes>,
}

/// What a `Range` header asks of a body of `total` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// The whole body: no usable single byte range (another unit, several ranges, or not
    /// parseable), which a server may ignore.
    Whole,
    /// Bytes `first..=last`, within the body.
    Part {
        /// First byte.
        first: u64,
        /// Last byte, inclusive.
        last: u64,
    },
    /// No byte of the range exists: `416`.
    Unsatisfiable,
}

/// Reads a single `bytes=N-`, `bytes=N-M` or `bytes=-N` (the last N bytes) range; `M` past the
/// end is cut to the end.
pub fn byte_range(value: &str, total: u64) -> ByteRange {
    let value = value.trim();
    let Some((unit, spec)) = value.split_once('=') else {
        return ByteRange::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return ByteRange::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return ByteRange::Whole;
    };
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // bytes=-N: the last N bytes.
        return match number(last) {
            None => ByteRange::Whole,
            Some(0) => ByteRange::Unsatisfiable,
            Some(_) if total == 0 => ByteRange::Unsatisfiable,
            Some(n) => ByteRange::Part {
                first: total.saturating_sub(n),
                last: total - 1,
            },
        };
    }
    let Some(first) = number(first) else {
        return ByteRange::Whole;
    };
    let last = match number(last) {
        None if last.is_empty() => None,
        Some(l) if l >= first => Some(l),
        _ => return ByteRange::Whole,
    };
    if first >= total {
        return ByteRange::Unsatisfiable;
    }
    ByteRange::Part {
        first,
        last: last.map_or(total - 1, |l| l.min(total - 1)),
    }
}
