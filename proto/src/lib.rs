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
