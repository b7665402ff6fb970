//! The worker's payload converter: workflow and activity inputs arrive as `json/plain` (the
//! Temporal CLI, dicts in other SDKs), `json/protobuf` (proto classes in the Python and
//! TypeScript SDKs) or `binary/protobuf`; all three decode into the same generated types.
//! Outputs are `json/plain` with the proto field names, which every SDK reads as a map and
//! protobuf's JSON parser (`json_format.ParseDict`, `protojson`) turns into the proto class.

use std::{collections::HashMap, sync::Arc};

use temporalio_common::{
    data_converters::{
        DataConverter, ErasedSerdePayloadConverter, PayloadConversionError, PayloadConverter,
        SerializationContextData,
    },
    protos::temporal::api::common::v1::Payload,
};

const ENCODING: &str = "encoding";
const MESSAGE_TYPE: &str = "messageType";

/// The data converter the worker and the CLI use.
pub fn data_converter() -> DataConverter {
    DataConverter::new(
        PayloadConverter::Serde(Arc::new(ProtoAwareJson)),
        temporalio_common::data_converters::DefaultFailureConverter::default(),
        temporalio_common::data_converters::DefaultPayloadCodec,
    )
}

/// serde-based JSON conversion that also reads protobuf payloads.
struct ProtoAwareJson;

impl ErasedSerdePayloadConverter for ProtoAwareJson {
    fn to_payload(
        &self,
        _: &SerializationContextData,
        value: &dyn erased_serde::Serialize,
    ) -> Result<Payload, PayloadConversionError> {
        let data = serde_json::to_vec(value)
            .map_err(|e| PayloadConversionError::EncodingError(e.into()))?;
        let encoding = if data.as_slice() == b"null" {
            "binary/null"
        } else {
            "json/plain"
        };
        Ok(Payload {
            metadata: HashMap::from([(ENCODING.to_owned(), encoding.as_bytes().to_vec())]),
            data: if encoding == "binary/null" {
                Vec::new()
            } else {
                data
            },
            external_payloads: vec![],
        })
    }

    fn from_payload(
        &self,
        _: &SerializationContextData,
        payload: Payload,
    ) -> Result<Box<dyn erased_serde::Deserializer<'static>>, PayloadConversionError> {
        let value = decode(&payload)?;
        Ok(Box::new(<dyn erased_serde::Deserializer>::erase(value)))
    }
}

fn decode(payload: &Payload) -> Result<serde_json::Value, PayloadConversionError> {
    let meta = |key: &str| {
        payload
            .metadata
            .get(key)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    let invalid = |message: String| PayloadConversionError::EncodingError(message.into());
    match meta(ENCODING).as_deref() {
        Some("json/plain" | "json/protobuf") => serde_json::from_slice(&payload.data)
            .map_err(|e| PayloadConversionError::EncodingError(Box::new(e))),
        Some("binary/null") => Ok(serde_json::Value::Null),
        Some("binary/protobuf") => {
            let message_type = meta(MESSAGE_TYPE).ok_or_else(|| {
                invalid("binary/protobuf payload without messageType metadata".into())
            })?;
            grok_video_proto::binary::to_json(&message_type, &payload.data).map_err(invalid)
        }
        _ => Err(PayloadConversionError::WrongEncoding),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use grok_video_proto::v1::ArchiveVideoRequest;
    use prost::Message;

    fn payload(encoding: &str, message_type: Option<&str>, data: Vec<u8>) -> Payload {
        let mut metadata = HashMap::from([(ENCODING.to_owned(), encoding.as_bytes().to_vec())]);
        if let Some(t) = message_type {
            metadata.insert(MESSAGE_TYPE.to_owned(), t.as_bytes().to_vec());
        }
        Payload {
            metadata,
            data,
            external_payloads: vec![],
        }
    }

    fn read(p: &Payload) -> ArchiveVideoRequest {
        serde_json::from_value(decode(p).unwrap()).unwrap()
    }

    #[test]
    fn all_three_encodings_decode_to_the_same_request() {
        let expected = ArchiveVideoRequest {
            task_id: "video_1".into(),
            bucket: "videos".into(),
            poll_interval_seconds: Some(30),
            ..Default::default()
        };
        let plain = payload(
            "json/plain",
            None,
            br#"{"task_id":"video_1","bucket":"videos","poll_interval_seconds":30}"#.to_vec(),
        );
        let proto_json = payload(
            "json/protobuf",
            Some("grokvideo.v1.ArchiveVideoRequest"),
            br#"{"taskId":"video_1","bucket":"videos","pollIntervalSeconds":30}"#.to_vec(),
        );
        let binary = payload(
            "binary/protobuf",
            Some("grokvideo.v1.ArchiveVideoRequest"),
            expected.encode_to_vec(),
        );
        assert_eq!(read(&plain), expected);
        assert_eq!(read(&proto_json), expected);
        assert_eq!(read(&binary), expected);
    }

    #[test]
    fn unusable_payloads_say_why() {
        let no_type = payload("binary/protobuf", None, vec![]);
        assert!(
            decode(&no_type)
                .unwrap_err()
                .to_string()
                .contains("messageType")
        );
        let other = payload("binary/protobuf", Some("acme.Order"), vec![]);
        assert!(
            decode(&other)
                .unwrap_err()
                .to_string()
                .contains("acme.Order")
        );
        assert!(matches!(
            decode(&payload("xml/plain", None, vec![])),
            Err(PayloadConversionError::WrongEncoding)
        ));
    }
}
