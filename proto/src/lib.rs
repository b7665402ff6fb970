//! The wire schema of grok-video-worker: prost types generated from
//! `proto/grokvideo/v1/*.proto`, with serde derives so that each message travels as
//! `json/plain` (proto field names or their lowerCamelCase JSON names) as well as protobuf.

/// Version 1 of the schema, package `grokvideo.v1`.
pub mod v1 {
    #![allow(missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/grokvideo.v1.rs"));
}

/// Full proto names of the messages, as other languages' SDKs put them in payload metadata.
pub mod names {
    /// `grokvideo.v1.ArchiveVideoRequest`
    pub const ARCHIVE_VIDEO_REQUEST: &str = "grokvideo.v1.ArchiveVideoRequest";
    /// `grokvideo.v1.ArchivedVideo`
    pub const ARCHIVED_VIDEO: &str = "grokvideo.v1.ArchivedVideo";
}

/// Protobuf binary payloads: decoded by their full message name into the JSON the serde
/// derives read, so one set of types serves every payload encoding.
pub mod binary {
    use std::sync::LazyLock;

    use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

    static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
        DescriptorPool::decode(
            &include_bytes!(concat!(env!("OUT_DIR"), "/file_descriptor_set.bin"))[..],
        )
        .expect("descriptors compiled by build.rs")
    });

    /// Decodes `bytes` as the message `message_type` (e.g. `grokvideo.v1.ArchiveVideoRequest`)
    /// into JSON with the proto field names.
    pub fn to_json(message_type: &str, bytes: &[u8]) -> Result<serde_json::Value, String> {
        let descriptor = POOL.get_message_by_name(message_type).ok_or_else(|| {
            format!("unknown message type {message_type:?} (this worker knows grokvideo.v1.*)")
        })?;
        let message = DynamicMessage::decode(descriptor, bytes)
            .map_err(|e| format!("invalid {message_type} protobuf: {e}"))?;
        let options = SerializeOptions::new()
            .use_proto_field_name(true)
            .stringify_64_bit_integers(false);
        message
            .serialize_with_options(serde_json::value::Serializer, &options)
            .map_err(|e| format!("cannot convert {message_type} to JSON: {e}"))
    }
}

/// serde helpers that give the generated types proto3 JSON's leniency on input.
pub mod json {
    use serde::{Deserialize, Deserializer};

    /// A 64-bit integer as proto3 JSON writes it (a string) or as people do (a number).
    pub fn int64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Int {
            Number(i64),
            Float(f64),
            Text(String),
        }
        match Int::deserialize(d)? {
            Int::Number(n) => Ok(n),
            Int::Float(f) if f.fract() == 0.0 => Ok(f as i64),
            Int::Float(f) => Err(serde::de::Error::custom(format!("{f} is not an integer"))),
            Int::Text(s) => s
                .trim()
                .parse()
                .map_err(|_| serde::de::Error::custom(format!("{s:?} is not an integer"))),
        }
    }

    /// An unsigned 32-bit integer as a number or a string.
    pub fn uint32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let n = int64(d)?;
        u32::try_from(n)
            .map_err(|_| serde::de::Error::custom(format!("{n} is not an unsigned 32-bit integer")))
    }

    /// An optional unsigned 32-bit integer: absent or null is unset.
    pub fn opt_uint32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(deserialize_with = "uint32")] u32);
        Ok(Option::<Wrapped>::deserialize(d)?.map(|w| w.0))
    }

    /// `VideoStatus` as its proto name on output; on input the proto name, the short name in
    /// any case (`completed`) or the number.
    pub mod enum_video_status {
        use serde::{Deserialize, Deserializer, Serializer};

        use crate::v1::VideoStatus;

        /// Writes the proto3 JSON name, e.g. `VIDEO_STATUS_COMPLETED`.
        pub fn serialize<S: Serializer>(value: &i32, s: S) -> Result<S::Ok, S::Error> {
            match VideoStatus::try_from(*value) {
                Ok(status) => s.serialize_str(status.as_str_name()),
                Err(_) => s.serialize_i32(*value),
            }
        }

        /// Reads a name, short name or number.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
            #[derive(Deserialize)]
            #[serde(untagged)]
            enum Repr {
                Number(i32),
                Text(String),
            }
            match Repr::deserialize(d)? {
                Repr::Number(n) => Ok(n),
                Repr::Text(s) => {
                    let upper = s.trim().to_ascii_uppercase();
                    VideoStatus::from_str_name(&upper)
                        .or_else(|| VideoStatus::from_str_name(&format!("VIDEO_STATUS_{upper}")))
                        .map(|v| v as i32)
                        .ok_or_else(|| {
                            serde::de::Error::custom(format!("unknown VideoStatus {s:?}"))
                        })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::v1::*;

    #[test]
    fn binary_protobuf_decodes_into_the_same_types() {
        use prost::Message;
        let request = ArchiveVideoRequest {
            task_id: "video_1".into(),
            bucket: "b".into(),
            deadline_seconds: Some(60),
            continuation: Some(Continuation {
                started_at: 1_774_836_724,
                polls: 3,
                ..Default::default()
            }),
            ..Default::default()
        };
        let json =
            crate::binary::to_json("grokvideo.v1.ArchiveVideoRequest", &request.encode_to_vec())
                .unwrap();
        let back: ArchiveVideoRequest = serde_json::from_value(json).unwrap();
        assert_eq!(back, request);
        let task = VideoTask {
            status: VideoStatus::Completed as i32,
            created: 5,
            ..Default::default()
        };
        let json = crate::binary::to_json("grokvideo.v1.VideoTask", &task.encode_to_vec()).unwrap();
        assert_eq!(serde_json::from_value::<VideoTask>(json).unwrap(), task);
        assert!(
            crate::binary::to_json("other.Thing", b"")
                .unwrap_err()
                .contains("unknown message type")
        );
    }

    #[test]
    fn json_accepts_32_bit_integers_as_numbers_or_strings() {
        let parsed: ArchiveVideoRequest = serde_json::from_str(
            r#"{"task_id":"video_1","poll_interval_seconds":"30","deadlineSeconds":600,"first_poll_delay_seconds":null}"#,
        )
        .unwrap();
        assert_eq!(parsed.poll_interval_seconds, Some(30));
        assert_eq!(parsed.deadline_seconds, Some(600));
        assert_eq!(parsed.first_poll_delay_seconds, None);
        assert_eq!(parsed.max_polls_per_run, None);
        let progress: VideoProgress = serde_json::from_str(r#"{"polls":"3"}"#).unwrap();
        assert_eq!(progress.polls, 3);
        let bad =
            serde_json::from_str::<ArchiveVideoRequest>(r#"{"poll_interval_seconds":"soon"}"#)
                .unwrap_err()
                .to_string();
        assert!(bad.contains("\"soon\" is not an integer"), "{bad}");
        assert!(
            serde_json::from_str::<ArchiveVideoRequest>(r#"{"poll_interval_seconds":-1}"#).is_err()
        );
    }

    #[test]
    fn json_accepts_proto_and_camel_case_names() {
        let snake: ArchiveVideoRequest =
            serde_json::from_str(r#"{"task_id":"video_1","bucket":"b","poll_interval_seconds":5}"#)
                .unwrap();
        let camel: ArchiveVideoRequest =
            serde_json::from_str(r#"{"taskId":"video_1","bucket":"b","pollIntervalSeconds":5}"#)
                .unwrap();
        assert_eq!(snake, camel);
        assert_eq!(snake.poll_interval_seconds, Some(5));
        assert_eq!(snake.key, "");
    }

    #[test]
    fn int64_and_enum_accept_every_proto3_json_form() {
        let task: VideoTask =
            serde_json::from_str(r#"{"id":"v","status":"completed","created":"1774836724"}"#)
                .unwrap();
        assert_eq!(task.status(), VideoStatus::Completed);
        assert_eq!(task.created, 1_774_836_724);
        let task: VideoTask =
            serde_json::from_str(r#"{"status":"VIDEO_STATUS_FAILED","created":5}"#).unwrap();
        assert_eq!(task.status(), VideoStatus::Failed);
        let out = serde_json::to_value(&task).unwrap();
        assert_eq!(out["status"], "VIDEO_STATUS_FAILED");
        assert!(serde_json::from_str::<VideoTask>(r#"{"status":"bogus"}"#).is_err());
    }
}
