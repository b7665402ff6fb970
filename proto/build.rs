//! Compiles `grokvideo/v1/*.proto` with protox (no system `protoc`) into prost types that
//! also carry serde derives, so the same structs travel as json/plain and protobuf payloads.

use std::path::Path;

use prost_build::Config;
use protox::prost_reflect::{Kind, MessageDescriptor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["grokvideo/v1/video.proto"];
    for file in &files {
        println!("cargo:rerun-if-changed={file}");
    }
    let pool = protox::compile(files, ["."])?;
    let descriptors =
        protox::prost_reflect::DescriptorPool::from_file_descriptor_set(pool.clone())?;

    let mut config = Config::new();
    for message in descriptors.all_messages() {
        config.type_attribute(
            format!(".{}", message.full_name()),
            "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default)]",
        );
        annotate_fields(&mut config, &message);
    }
    let out = std::env::var("OUT_DIR")?;
    // The descriptors travel with the crate: binary/protobuf payloads name their message
    // type, and the worker decodes them by that name.
    std::fs::write(
        Path::new(&out).join("file_descriptor_set.bin"),
        prost::Message::encode_to_vec(&pool),
    )?;
    config.out_dir(Path::new(&out));
    config.compile_fds(pool)?;
    Ok(())
}

/// Every field accepts its proto3 JSON name (lowerCamelCase) besides the proto name, and the
/// JSON forms proto3 allows for enums (name or number) and integers (string or number).
fn annotate_fields(config: &mut Config, message: &MessageDescriptor) {
    for field in message.fields() {
        let path = format!(".{}.{}", message.full_name(), field.name());
        let mut attrs = Vec::new();
        if field.json_name() != field.name() {
            attrs.push(format!("#[serde(alias = \"{}\")]", field.json_name()));
        }
        match field.kind() {
            Kind::Enum(e) => attrs.push(format!(
                "#[serde(with = \"crate::json::enum_{}\")]",
                to_snake(e.name())
            )),
            Kind::Int64 | Kind::Uint64 | Kind::Sint64 | Kind::Fixed64 | Kind::Sfixed64 => {
                attrs.push("#[serde(deserialize_with = \"crate::json::int64\")]".to_owned())
            }
            // proto3 JSON also accepts 32-bit integers as strings ("30").
            Kind::Uint32 | Kind::Fixed32 if !field.is_list() => {
                let with = if field.supports_presence() {
                    "opt_uint32"
                } else {
                    "uint32"
                };
                attrs.push(format!(
                    "#[serde(deserialize_with = \"crate::json::{with}\")]"
                ))
            }
            _ => {}
        }
        if !attrs.is_empty() {
            config.field_attribute(path, attrs.join(" "));
        }
    }
}

fn to_snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}
