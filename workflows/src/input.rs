//! A workflow's input as it arrived. A payload that does not decode into the request (a
//! field of the wrong type, a JSON syntax error, an unknown encoding) would otherwise fail
//! the workflow *task*, which the server retries forever while the caller waits; as an
//! [`Input`] the workflow starts, and fails at once with `InvalidRequest` naming the field.
//! On the wire it is exactly the request: callers send the message itself.

use serde::{Serialize, de::DeserializeOwned};
use temporalio_workflow::common::{
    data_converters::{
        ErasedSerdePayloadConverter, PayloadConversionError, SerializationContext,
        TemporalDeserializable, TemporalSerializable,
    },
    protos::temporal::api::common::v1::Payload,
};

/// A request, or why its payload could not be decoded into one.
#[derive(Debug, Clone, PartialEq)]
pub struct Input<T>(Result<T, String>);

impl<T> Input<T> {
    /// The decoded request, or what was wrong with the payload.
    pub fn into_result(self) -> Result<T, String> {
        self.0
    }
}

impl<T> From<T> for Input<T> {
    fn from(request: T) -> Self {
        Self(Ok(request))
    }
}

impl<T: Serialize + 'static> TemporalSerializable for Input<T> {
    fn as_serde(&self) -> Result<&dyn erased_serde::Serialize, PayloadConversionError> {
        match &self.0 {
            Ok(request) => Ok(request),
            Err(problem) => Err(PayloadConversionError::EncodingError(
                problem.clone().into(),
            )),
        }
    }
}

impl<T: DeserializeOwned> TemporalDeserializable for Input<T> {
    fn from_serde(
        converter: &dyn ErasedSerdePayloadConverter,
        context: &SerializationContext<'_>,
        payload: Payload,
    ) -> Result<Self, PayloadConversionError> {
        let message = std::any::type_name::<T>()
            .rsplit("::")
            .next()
            .unwrap_or("request");
        let encoding = payload
            .metadata
            .get("encoding")
            .map(|e| String::from_utf8_lossy(e).into_owned())
            .unwrap_or_else(|| "no encoding".to_owned());
        let decoded = match converter.from_payload(context.data, payload) {
            Ok(mut deserializer) => serde_path_to_error::deserialize::<_, T>(&mut *deserializer)
                .map_err(|e| {
                    let path = e.path().to_string();
                    if path == "." {
                        format!("{message}: {}", e.inner())
                    } else {
                        format!("{message}.{path}: {}", e.inner())
                    }
                }),
            Err(PayloadConversionError::WrongEncoding) => Err(format!(
                "{message}: payload encoding {encoding:?} is not json/plain, json/protobuf or binary/protobuf"
            )),
            Err(e) => Err(format!(
                "{message}: cannot decode the {encoding} payload: {e}"
            )),
        };
        Ok(Self(decoded))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use grok_video_proto::v1::ArchiveVideoRequest;
    use std::collections::HashMap;
    use temporalio_workflow::common::data_converters::{
        GenericPayloadConverter, PayloadConverter, SerializationContextData,
    };

    fn decode(encoding: &str, data: &[u8]) -> Result<ArchiveVideoRequest, String> {
        let converter = PayloadConverter::default();
        let data_ctx = SerializationContextData::None;
        let ctx = SerializationContext::new(&data_ctx, &converter);
        let payload = Payload {
            metadata: HashMap::from([("encoding".to_owned(), encoding.as_bytes().to_vec())]),
            data: data.to_vec(),
            external_payloads: vec![],
        };
        let input: Input<ArchiveVideoRequest> =
            converter.from_payloads(&ctx, vec![payload]).unwrap();
        input.into_result()
    }

    #[test]
    fn good_input_decodes_and_bad_input_names_the_field() {
        assert_eq!(
            decode("json/plain", br#"{"task_id":"video_1"}"#)
                .unwrap()
                .task_id,
            "video_1"
        );
        let wrong_type = decode(
            "json/plain",
            br#"{"task_id":"video_1","poll_interval_seconds":"soon"}"#,
        )
        .unwrap_err();
        assert!(
            wrong_type.starts_with("ArchiveVideoRequest.poll_interval_seconds: "),
            "{wrong_type}"
        );
        let not_json = decode("json/plain", b"task_id=video_1").unwrap_err();
        assert!(not_json.starts_with("ArchiveVideoRequest"), "{not_json}");
        let xml = decode("xml/plain", b"<task/>").unwrap_err();
        assert!(xml.contains("xml/plain"), "{xml}");
    }
}
