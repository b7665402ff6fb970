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
        if request.body().bytes().is_some() {
            return Ok(());
        }
        if let Some(rest) = request.uri().strip_prefix("http:") {
            let uri = format!("https:{rest}");
            request.set_uri(uri)?;
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
            let request = context.request_mut();
            if let Some(rest) = request.uri().strip_prefix("https:") {
                let uri = format!("http:{rest}");
                request.set_uri(uri)?;
            }
        }
        Ok(())
    }
}
