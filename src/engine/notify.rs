//! Notifications at the end of a save, upload, sync, and each daemon round that
//! changed or failed something: a JSON webhook, and DingTalk robots with their
//! signed-URL scheme (as image-transmit sends them). A failing notification is
//! logged, never fatal.

use super::report::{Reporter, Summary};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct Notifier {
    pub webhook: Option<String>,
    /// (access token, signing secret) of each DingTalk robot.
    pub dingtalk: Vec<(String, Option<String>)>,
}

/// The JSON a webhook receives.
pub fn summary_json(summary: &Summary) -> serde_json::Value {
    serde_json::json!({
        "mode": summary.action,
        "total": summary.total,
        "succeeded": summary.succeeded,
        "failed": summary.failed.len(),
        "invalid": summary.invalid.len(),
        "bytes": summary.bytes,
        "duration_seconds": summary.elapsed.as_secs_f64(),
        "failures": summary.failed.iter().chain(&summary.invalid).map(|(r, why)| serde_json::json!({"reference": r, "reason": why})).collect::<Vec<_>>(),
    })
}

impl Notifier {
    pub fn is_empty(&self) -> bool {
        self.webhook.is_none() && self.dingtalk.is_empty()
    }

    pub async fn send(&self, summary: &Summary, reporter: &Reporter) {
        if self.is_empty() {
            return;
        }
        let http = match reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                return reporter.warn(&crate::tr!("notification not sent: {e}", "通知未发送: {e}"))
            }
        };
        if let Some(url) = &self.webhook {
            let r = http
                .post(url)
                .header("content-type", "application/json")
                .body(summary_json(summary).to_string())
                .send()
                .await;
            report(reporter, "webhook", r);
        }
        for (token, secret) in &self.dingtalk {
            let (url, body) = dingtalk_request(
                token,
                secret.as_deref(),
                chrono::Utc::now().timestamp_millis(),
                summary,
            );
            let r = http
                .post(&url)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await;
            report(reporter, "DingTalk", r);
        }
    }
}

fn report(reporter: &Reporter, what: &str, r: reqwest::Result<reqwest::Response>) {
    match r {
        Ok(resp) if resp.status().is_success() => {
            reporter.debug(&crate::tr!("{what} notification sent", "{what} 通知已发送"))
        }
        Ok(resp) => reporter.warn(&crate::tr!(
            "{what} notification failed: HTTP {}",
            "{what} 通知失败: HTTP {}",
            resp.status().as_u16()
        )),
        // The error names the URL, which for DingTalk holds the token: keep it out.
        Err(e) => reporter.warn(&crate::tr!(
            "{what} notification failed: {}",
            "{what} 通知失败: {}",
            if e.is_timeout() {
                crate::i18n::t("timed out", "超时")
            } else if e.is_connect() {
                crate::i18n::t("cannot connect", "无法连接")
            } else {
                crate::i18n::t("request error", "请求错误")
            }
        )),
    }
}

/// The URL (signed when the robot has a secret) and markdown body of a DingTalk
/// robot message about `summary`.
pub fn dingtalk_request(
    token: &str,
    secret: Option<&str>,
    timestamp_ms: i64,
    summary: &Summary,
) -> (String, serde_json::Value) {
    let mut url = format!("https://oapi.dingtalk.com/robot/send?access_token={token}");
    if let Some(secret) = secret.filter(|s| !s.is_empty()) {
        url.push_str(&format!(
            "&timestamp={timestamp_ms}&sign={}",
            dingtalk_sign(timestamp_ms, secret)
        ));
    }
    let text = crate::tr!(
        "### ferry {}\n- total: {}\n- succeeded: {}\n- failed: {}\n{}",
        "### ferry {}\n- 总数: {}\n- 成功: {}\n- 失败: {}\n{}",
        summary.action_name(),
        summary.total,
        summary.succeeded,
        summary.failed.len() + summary.invalid.len(),
        summary
            .failed
            .iter()
            .chain(&summary.invalid)
            .map(|(r, why)| format!("- {r}: {why}\n"))
            .collect::<String>()
    );
    let body = serde_json::json!({
        "msgtype": "markdown",
        "markdown": {"title": format!("ferry {}", summary.action_name()), "text": text},
    });
    (url, body)
}

/// DingTalk's signature: base64(HMAC-SHA256(secret, "{timestamp}\n{secret}")), URL-encoded.
pub fn dingtalk_sign(timestamp_ms: i64, secret: &str) -> String {
    let mac = hmac_sha256(
        secret.as_bytes(),
        format!("{timestamp_ms}\n{secret}").as_bytes(),
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(mac);
    b64.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    const BLOCK: usize = 64;
    let mut k = if key.len() > BLOCK {
        Sha256::digest(key).to_vec()
    } else {
        key.to_vec()
    };
    k.resize(BLOCK, 0);
    let inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let mut h = Sha256::new();
    h.update(&inner);
    h.update(message);
    let inner_hash = h.finalize();
    let mut h = Sha256::new();
    h.update(&outer);
    h.update(inner_hash);
    h.finalize().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    /// The value DingTalk's own sample code (Python: hmac, base64, quote_plus)
    /// gives for this timestamp and secret.
    #[test]
    fn dingtalk_signature_matches_dingtalks_sample_code() {
        assert_eq!(
            dingtalk_sign(1_600_000_000_000, "SECxxx"),
            "46z2Kh6PB64ZSqLEX1CgPwbuz6TSyTqZm4N6qNkqUXQ%3D"
        );
    }

    #[test]
    fn dingtalk_request_is_signed_markdown_with_the_failures() {
        let s = Summary {
            action: "upload",
            total: 3,
            succeeded: 2,
            failed: vec![("a:1".into(), "HTTP 500".into())],
            ..Summary::default()
        };
        let (url, body) = dingtalk_request("t0k", Some("SECxxx"), 1_600_000_000_000, &s);
        assert_eq!(
            url,
            "https://oapi.dingtalk.com/robot/send?access_token=t0k&timestamp=1600000000000\
             &sign=46z2Kh6PB64ZSqLEX1CgPwbuz6TSyTqZm4N6qNkqUXQ%3D"
        );
        assert_eq!(body["msgtype"], "markdown");
        let text = body["markdown"]["text"].as_str().unwrap_or_default();
        assert!(text.contains("- a:1: HTTP 500"), "{text}");
        assert!(!url.contains("SECxxx"), "the secret itself is never sent");
        let (unsigned, _) = dingtalk_request("t0k", None, 1, &s);
        assert!(!unsigned.contains("sign="), "{unsigned}");
    }

    #[test]
    fn summary_json_lists_failures() {
        let s = Summary {
            action: "sync",
            total: 2,
            succeeded: 1,
            failed: vec![("a:1".into(), "not found".into())],
            ..Summary::default()
        };
        let j = summary_json(&s);
        assert_eq!(j["mode"], "sync");
        assert_eq!(j["failures"][0]["reference"], "a:1");
    }
}
