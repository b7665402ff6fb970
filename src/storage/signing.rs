//! Streamed parts over plain http without a second hash of every byte.
//!
//! A part that streams carries a CRC32 trailer that S3 checks, and its payload is not signed,
//! as over https. Over plain http the SDK would instead sign every 64 KiB chunk of it
//! (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`): a second SHA-256 over the whole video, on
//! top of the one stored with the object. An in-memory part already goes unsigned over http
//! with a CRC32 header (`disable_payload_signing`); this keeps streamed parts the same. The
//! SDK decides by the request's scheme when it encodes the body, so for that step (and the
//! signature, which does not cover the scheme) the request reads `https:`, and it is put back
//! before it is sent.

use aws_sdk_s3::config::{
    ConfigBag, Intercept, RuntimeComponents, interceptors::BeforeTransmitInterceptorContextMut,
};
use aws_smithy_types::config_bag::{Storable, StoreReplace};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The interceptor; add it to the client only when request checksums are on (the default).
#[derive(Debug)]
pub(super) struct UnsignedStreamingOverHttp;

/// Marks a request whose scheme was switched.
#[derive(Debug, Clone)]
struct PlainHttp;

impl Storable for PlainHttp {
    type Storer = StoreReplace<Self>;
}

impl Intercept for UnsignedStreamingOverHttp {
    fn name(&self) -> &'static str {
        "UnsignedStreamingOverHttp"
    }

    // Client interceptors run before the operation's, so this comes before the SDK's
    // aws-chunked encoder looks at the scheme.
    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request_mut();
        if request.body().bytes().is_none() && swap_scheme(request, "http:", "https:")? {
            cfg.interceptor_state().store_put(PlainHttp);
        }
        Ok(())
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if cfg.load::<PlainHttp>().is_some() {
            swap_scheme(context.request_mut(), "https:", "http:")?;
        }
        Ok(())
    }
}

/// Gives a request whose URI starts with `from` the scheme `to`; whether it did.
fn swap_scheme(
    request: &mut aws_sdk_s3::config::http::HttpRequest,
    from: &str,
    to: &str,
) -> Result<bool, BoxError> {
    let Some(rest) = request.uri().strip_prefix(from) else {
        return Ok(false);
    };
    let uri = format!("{to}{rest}");
    request.set_uri(uri)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    use axum::{body::Bytes as Body, extract::State, http::HeaderMap, response::IntoResponse};

    use super::*;
    use crate::storage::upload::Upload;

    type Seen = Arc<Mutex<Vec<(String, HeaderMap, Body)>>>;

    /// A loopback "S3" that records each request and answers like UploadPart.
    async fn recording_s3() -> (String, Seen) {
        let seen: Seen = Arc::default();
        async fn record(
            State(seen): State<Seen>,
            uri: axum::http::Uri,
            headers: HeaderMap,
            body: Body,
        ) -> impl IntoResponse {
            seen.lock().unwrap().push((uri.to_string(), headers, body));
            [("etag", "\"e1\"")]
        }
        let app = axum::Router::new()
            .fallback(record)
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (endpoint, seen)
    }

    /// The chunks' data and the trailer of an aws-chunked body.
    fn decode_aws_chunked(mut body: &[u8]) -> (Vec<u8>, String) {
        let mut data = Vec::new();
        loop {
            let line_end = body.windows(2).position(|w| w == b"\r\n").unwrap();
            let header = std::str::from_utf8(&body[..line_end]).unwrap();
            assert!(
                !header.contains("chunk-signature"),
                "a signed chunk: {header}"
            );
            let len = usize::from_str_radix(header, 16).unwrap();
            body = &body[line_end + 2..];
            if len == 0 {
                return (data, String::from_utf8(body.to_vec()).unwrap());
            }
            data.extend_from_slice(&body[..len]);
            assert_eq!(&body[len..len + 2], b"\r\n");
            body = &body[len + 2..];
        }
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[tokio::test]
    async fn a_streamed_part_over_http_goes_unsigned_with_a_crc32_trailer() {
        let (endpoint, seen) = recording_s3().await;
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
            .endpoint_url(&endpoint)
            .force_path_style(true)
            .interceptor(UnsignedStreamingOverHttp)
            .build();
        let s3 = aws_sdk_s3::Client::from_conf(conf);
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut upload = Upload::resumed(&s3, "b", "k", "upload-1", Vec::new(), 1);
        let mut writer = upload.push_streamed(data.len() as u64).await.unwrap();
        for piece in data.chunks(30_000) {
            writer
                .send(bytes::Bytes::copy_from_slice(piece))
                .await
                .ok()
                .unwrap();
        }
        upload.finish_one().await.unwrap();

        let seen = seen.lock().unwrap();
        let (uri, headers, body) = &seen[0];
        assert!(
            uri.contains("partNumber=1") && uri.contains("uploadId=upload-1"),
            "{uri}"
        );
        let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(
            header("x-amz-content-sha256").as_deref(),
            Some("STREAMING-UNSIGNED-PAYLOAD-TRAILER")
        );
        assert_eq!(header("content-encoding").as_deref(), Some("aws-chunked"));
        assert_eq!(
            header("x-amz-trailer").as_deref(),
            Some("x-amz-checksum-crc32")
        );
        assert_eq!(
            header("x-amz-decoded-content-length"),
            Some(data.len().to_string())
        );
        let (decoded, trailer) = decode_aws_chunked(body);
        assert!(decoded == data, "the part's bytes arrive intact");
        let crc = aws_smithy_types::base64::encode(crc32(&data).to_be_bytes());
        assert_eq!(trailer, format!("x-amz-checksum-crc32:{crc}\r\n\r\n"));
    }
}
