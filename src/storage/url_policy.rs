//! Which video URLs the worker will fetch: https only (unless allowed), never loopback,
//! private or link-local addresses (unless allowed), a few redirects at most, each checked.

use std::net::IpAddr;

use url::{Host, Url};

/// Redirects followed from `video_url` before giving up.
pub const MAX_REDIRECTS: usize = 5;

/// The rules, from the storage settings.
#[derive(Debug, Clone, Copy)]
pub struct UrlPolicy {
    /// Plain http accepted.
    pub allow_http: bool,
    /// Loopback, private and link-local addresses accepted.
    pub allow_private: bool,
}

impl UrlPolicy {
    /// Checks scheme and literal host; `Err` says why the URL is refused.
    pub fn check(&self, url: &Url) -> Result<(), String> {
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => {
                return Err(
                    "plain http is refused (set GROK_ALLOW_HTTP_VIDEO_URLS=true to allow it)"
                        .into(),
                );
            }
            other => return Err(format!("scheme {other:?} is not http(s)")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("URLs with credentials are refused".into());
        }
        match url.host() {
            None => Err("the URL has no host".into()),
            Some(Host::Domain(d)) if !self.allow_private && is_local_name(d) => Err(format!(
                "host {d} is local (set GROK_ALLOW_PRIVATE_VIDEO_URLS=true to allow it)"
            )),
            Some(Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)),
            Some(Host::Domain(_)) => Ok(()),
        }
    }

    /// Checks one resolved or literal address.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), String> {
        if self.allow_private || is_public(ip) {
            Ok(())
        } else {
            Err(format!(
                "address {ip} is loopback, private or link-local (set GROK_ALLOW_PRIVATE_VIDEO_URLS=true to allow it)"
            ))
        }
    }
}

fn is_local_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host.ends_with(".local")
        || host.ends_with(".internal")
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80) // link-local
        }
    }
}

/// The URL as logs and errors show it: without query or fragment, which in pre-signed links
/// carry signatures.
pub fn display_url(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_password(None);
    let _ = shown.set_username("");
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: UrlPolicy = UrlPolicy {
        allow_http: false,
        allow_private: false,
    };

    #[test]
    fn strict_policy_refuses_local_and_plain_urls() {
        for bad in [
            "http://cdn.example/v.mp4",
            "https://127.0.0.1/v.mp4",
            "https://10.1.2.3/v.mp4",
            "https://169.254.169.254/latest",
            "https://[::1]/v.mp4",
            "https://[fd00::1]/v.mp4",
            "https://localhost/v.mp4",
            "file:///etc/passwd",
            "https://user:pw@cdn.example/v.mp4",
        ] {
            assert!(STRICT.check(&Url::parse(bad).unwrap()).is_err(), "{bad}");
        }
        assert!(
            STRICT
                .check(&Url::parse("https://cdn.example/v.mp4?sig=1").unwrap())
                .is_ok()
        );
        let local = UrlPolicy {
            allow_http: true,
            allow_private: true,
        };
        assert!(
            local
                .check(&Url::parse("http://127.0.0.1:9/v.mp4").unwrap())
                .is_ok()
        );
    }

    #[test]
    fn displayed_urls_drop_signatures() {
        let url = Url::parse("https://cdn.example/v.mp4?X-Amz-Signature=abc#x").unwrap();
        assert_eq!(display_url(&url), "https://cdn.example/v.mp4");
    }
}
