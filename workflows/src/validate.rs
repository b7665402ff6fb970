//! What the provider documents as certain about a create request, checked before anything is
//! sent. Where its mirrors disagree (stable's durations and resolutions), the request passes
//! and the provider's own validation message reaches the user.

use grok_video_proto::v1::GenerateVideoRequest;

/// Models the provider documents.
pub const MODELS: &[&str] = &[
    "grok_video3",
    "grok_video3_pro",
    "grok_video3_max",
    "grok_video3_stable",
];
const ASPECT_RATIOS: &[&str] = &["16:9", "9:16", "1:1", "3:2", "2:3"];
const MAX_ASPECT_RATIOS: &[&str] = &["16:9", "9:16", "1:1"];
const MAX_DURATIONS: &[u32] = &[6, 10, 12, 16, 20, 30];

/// The first problem found, naming the field.
pub fn generate_request(request: &GenerateVideoRequest) -> Result<(), String> {
    let model = request.model.as_str();
    let field =
        |name: &str, problem: String| Err(format!("GenerateVideoRequest.{name}: {problem}"));
    if !MODELS.contains(&model) {
        return field(
            "model",
            format!("unknown model {model:?}; one of {}", MODELS.join(", ")),
        );
    }
    if request.prompt.trim().is_empty() {
        return field("prompt", "is empty".into());
    }
    if let Some(d) = request.duration_seconds {
        let ok = match model {
            "grok_video3" => (6..=30).contains(&d),
            "grok_video3_pro" => d == 10,
            "grok_video3_max" => MAX_DURATIONS.contains(&d),
            _ => d == 6 || d == 10,
        };
        if !ok {
            let allowed = match model {
                "grok_video3" => "6 to 30".to_owned(),
                "grok_video3_pro" => "10".to_owned(),
                "grok_video3_max" => "one of 6, 10, 12, 16, 20, 30".to_owned(),
                _ => "6 or 10".to_owned(),
            };
            return field(
                "duration_seconds",
                format!("{model} takes {allowed} seconds, got {d}"),
            );
        }
    }
    if !request.aspect_ratio.is_empty() {
        let allowed = if model == "grok_video3_max" {
            MAX_ASPECT_RATIOS
        } else {
            ASPECT_RATIOS
        };
        if !allowed.contains(&request.aspect_ratio.as_str()) {
            return field(
                "aspect_ratio",
                format!(
                    "{model} takes {}, got {:?}",
                    allowed.join(", "),
                    request.aspect_ratio
                ),
            );
        }
    }
    if !request.resolution.is_empty() && !["480p", "720p"].contains(&request.resolution.as_str()) {
        return field(
            "resolution",
            format!("480p or 720p, got {:?}", request.resolution),
        );
    }
    let max_images = if model == "grok_video3_max" { 5 } else { 7 };
    if request.image_urls.len() > max_images {
        return field(
            "image_urls",
            format!(
                "{model} takes at most {max_images} images, got {}",
                request.image_urls.len()
            ),
        );
    }
    for (i, url) in request.image_urls.iter().enumerate() {
        let url = url.trim();
        if url.starts_with("data:") {
            if matches!(model, "grok_video3_max" | "grok_video3_stable") {
                return field(
                    &format!("image_urls[{i}]"),
                    format!("{model} accepts public URLs only, not data URIs"),
                );
            }
        } else if !(url.starts_with("https://") || url.starts_with("http://")) {
            return field(
                &format!("image_urls[{i}]"),
                "is neither an http(s) URL nor a data URI".into(),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(model: &str) -> GenerateVideoRequest {
        GenerateVideoRequest {
            model: model.into(),
            prompt: "a cat".into(),
            ..Default::default()
        }
    }

    #[test]
    fn valid_requests_pass() {
        for model in MODELS {
            assert_eq!(generate_request(&req(model)), Ok(()), "{model}");
        }
        let mut r = req("grok_video3_max");
        r.duration_seconds = Some(16);
        r.aspect_ratio = "1:1".into();
        r.image_urls = vec!["https://img.example/a.png".into(); 5];
        assert_eq!(generate_request(&r), Ok(()));
    }

    #[test]
    fn each_rule_names_its_field() {
        let cases: Vec<(GenerateVideoRequest, &str)> = vec![
            (req("grok_video4"), "GenerateVideoRequest.model"),
            (
                GenerateVideoRequest {
                    prompt: " ".into(),
                    ..req("grok_video3")
                },
                "GenerateVideoRequest.prompt",
            ),
            (
                GenerateVideoRequest {
                    duration_seconds: Some(31),
                    ..req("grok_video3")
                },
                "duration_seconds: grok_video3 takes 6 to 30",
            ),
            (
                GenerateVideoRequest {
                    duration_seconds: Some(12),
                    ..req("grok_video3_pro")
                },
                "grok_video3_pro takes 10",
            ),
            (
                GenerateVideoRequest {
                    duration_seconds: Some(8),
                    ..req("grok_video3_max")
                },
                "one of 6, 10",
            ),
            (
                GenerateVideoRequest {
                    aspect_ratio: "3:2".into(),
                    ..req("grok_video3_max")
                },
                "aspect_ratio",
            ),
            (
                GenerateVideoRequest {
                    aspect_ratio: "4:3".into(),
                    ..req("grok_video3")
                },
                "aspect_ratio",
            ),
            (
                GenerateVideoRequest {
                    resolution: "1080p".into(),
                    ..req("grok_video3")
                },
                "resolution",
            ),
            (
                GenerateVideoRequest {
                    image_urls: vec!["https://a/b.png".into(); 6],
                    ..req("grok_video3_max")
                },
                "at most 5",
            ),
            (
                GenerateVideoRequest {
                    image_urls: vec!["https://a/b.png".into(); 8],
                    ..req("grok_video3")
                },
                "at most 7",
            ),
            (
                GenerateVideoRequest {
                    image_urls: vec!["data:image/png;base64,AAAA".into()],
                    ..req("grok_video3_stable")
                },
                "image_urls[0]",
            ),
        ];
        for (request, expected) in cases {
            let err = generate_request(&request).unwrap_err();
            assert!(
                err.contains(expected),
                "{err:?} should contain {expected:?}"
            );
        }
        let ok = GenerateVideoRequest {
            image_urls: vec!["data:image/png;base64,AAAA".into()],
            ..req("grok_video3")
        };
        assert_eq!(generate_request(&ok), Ok(()));
    }
}
