//! The channels' secret values, and removing them from every text that leaves the engine (logs,
//! errors, stored records, message bodies).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tributary_core::alerts::ChannelConfig;
use tributary_core::redact::scrub;

/// Every secret value of the resolved channels, longest first.
#[derive(Debug, Default)]
pub(crate) struct Secrets(Vec<String>);

impl Secrets {
    /// The secrets of `channels` (already substituted), in the order given.
    pub(crate) fn of<'a>(channels: impl IntoIterator<Item = &'a ChannelConfig>) -> Secrets {
        let mut secrets = Vec::new();
        for c in channels {
            secrets.extend(c.secrets());
            if let ChannelConfig::Jira {
                email, api_token, ..
            } = c
            {
                // What the Authorization header carries, should a server echo it.
                secrets.push(STANDARD.encode(format!("{email}:{}", api_token.expose())));
            }
        }
        // Longest first, so a URL is replaced whole before its parts.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Secrets(secrets)
    }

    /// `text` with every secret replaced.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let refs: Vec<&str> = self.0.iter().map(String::as_str).collect();
        scrub(text, &refs)
    }

    /// `v` with every secret replaced in its serialized text (unchanged if that would not parse).
    pub(crate) fn scrub_json(&self, v: serde_json::Value) -> serde_json::Value {
        let text = v.to_string();
        let clean = self.scrub(&text);
        if clean == text {
            v
        } else {
            serde_json::from_str(&clean).unwrap_or(v)
        }
    }
}
