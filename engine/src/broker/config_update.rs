//! UPDATE_BROKER_CONFIG (25): changes settings of a running broker and persists them, as RocketMQ's
//! `updateBrokerConfig` does.
//!
//! The body is `key=value` lines (the properties format). The request runs on the state core, which
//! checks every entry against a copy of the effective settings ([`BrokerConfig::set`]), writes the
//! whole effective configuration to the broker's config file (the `-c` file, else
//! `<storePathRootDir>/config/broker.properties`) atomically, and then applies it on every core
//! (see [`super::fan_out`]). The file write makes the change durable: the reply comes after
//! it. An unknown key or a bad value changes nothing and is answered SYSTEM_ERROR; the keys of
//! [`BLACK_LIST`] are answered NO_PERMISSION, like RocketMQ.
//!
//! | takes effect | keys |
//! |---|---|
//! | at once ([`LIVE_KEYS`]) | `brokerPermission` (sends, pulls, send-back), `autoCreateSubscriptionGroup`, `longPollingEnable`, `shortPollingTimeMills`, `maxMessageSize` |
//! | at the next start | every other key (listed in the reply's remark) |

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use tern_net::body::DataVersion;
use tern_net::code::response;
use tern_net::transport::Reply;
use tern_net::RemotingCommand;

use super::config::{BrokerConfig, KeyUse};
use super::core::{reply, success, Core, Origin};
use super::fan_out::is_core_part;
use super::persist;
use super::routing::STATE_CORE;

/// Keys a running broker applies at once.
pub const LIVE_KEYS: &[&str] = &[
    "brokerPermission",
    "autoCreateSubscriptionGroup",
    "longPollingEnable",
    "shortPollingTimeMills",
    "maxMessageSize",
];

/// Keys that may not be changed remotely (RocketMQ's default `configBlackList`).
pub const BLACK_LIST: &[&str] = &["configBlackList", "brokerConfigPath"];

/// The effective settings of one core that UPDATE_BROKER_CONFIG can change, with the version of the
/// configuration (bumped by each update, reported by GET_BROKER_CONFIG).
#[derive(Debug)]
pub(crate) struct LiveConfig {
    current: RefCell<BrokerConfig>,
    version: Cell<i64>,
}

impl LiveConfig {
    /// Starts from the settings the broker started with.
    pub(crate) fn new(config: &BrokerConfig) -> Self {
        LiveConfig {
            current: RefCell::new(config.clone()),
            version: Cell::new(0),
        }
    }

    /// `brokerPermission`.
    pub(crate) fn broker_permission(&self) -> i32 {
        self.current.borrow().broker_permission
    }

    /// `autoCreateSubscriptionGroup`.
    pub(crate) fn auto_create_subscription_group(&self) -> bool {
        self.current.borrow().auto_create_subscription_group
    }

    /// `longPollingEnable`.
    pub(crate) fn long_polling_enable(&self) -> bool {
        self.current.borrow().long_polling_enable
    }

    /// `shortPollingTimeMills`.
    pub(crate) fn short_polling_time(&self) -> Duration {
        self.current.borrow().short_polling_time
    }

    /// `maxMessageSize`.
    pub(crate) fn max_message_size(&self) -> u32 {
        self.current.borrow().store.max_message_size
    }

    /// The effective settings as `key=value` lines.
    pub(crate) fn to_properties(&self) -> String {
        self.current.borrow().to_properties()
    }

    /// The configuration's data version.
    pub(crate) fn data_version(&self) -> DataVersion {
        DataVersion {
            counter: self.version.get(),
            ..DataVersion::default()
        }
    }

    /// Applies `entries` to a copy of the effective settings. Returns the copy and the keys that
    /// only take effect at the next start, or why an entry cannot be applied.
    fn check(
        &self,
        entries: &[(String, String)],
    ) -> Result<(BrokerConfig, Vec<String>), (i32, String)> {
        let mut next = self.current.borrow().clone();
        let mut later = Vec::new();
        for (key, value) in entries {
            if BLACK_LIST.contains(&key.as_str()) {
                return Err((
                    response::NO_PERMISSION,
                    "Can not update config in black list.".into(),
                ));
            }
            match next.set(key, value) {
                Ok(KeyUse::Applied) if LIVE_KEYS.contains(&key.as_str()) => {}
                Ok(KeyUse::Applied) | Ok(KeyUse::Derived) | Ok(KeyUse::NoEffect) => {
                    later.push(key.clone())
                }
                Ok(KeyUse::Unknown) => {
                    return Err((response::SYSTEM_ERROR, format!("unknown config key {key}")))
                }
                Err(e) => return Err((response::SYSTEM_ERROR, e.to_string())),
            }
        }
        Ok((next, later))
    }

    fn replace(&self, next: BrokerConfig) {
        *self.current.borrow_mut() = next;
        self.version.set(self.version.get() + 1);
    }
}

/// Where the effective configuration is persisted.
pub(crate) fn config_file(config: &BrokerConfig) -> PathBuf {
    config
        .config_file
        .clone()
        .unwrap_or_else(|| config.config_dir().join("broker.properties"))
}

/// The body's `key=value` entries.
fn entries(body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("body is not UTF-8: {e}"))?;
    Ok(crate::properties::parse(text)
        .into_iter()
        .map(|p| (p.key, p.value))
        .collect())
}

impl Core {
    /// UPDATE_BROKER_CONFIG.
    pub(crate) async fn on_update_broker_config(
        self: &Rc<Self>,
        req: RemotingCommand,
        origin: Origin<'_>,
    ) -> Option<Reply> {
        if self.index != STATE_CORE && !is_core_part(&req) {
            return self.run_on(STATE_CORE, req, origin).await;
        }
        let entries = match entries(&req.body) {
            Ok(e) => e,
            Err(why) => return Some(reply(&req, response::SYSTEM_ERROR, why)),
        };
        let (next, later) = match self.live.check(&entries) {
            Ok(checked) => checked,
            Err((code, why)) => return Some(reply(&req, code, why)),
        };
        if is_core_part(&req) {
            self.live.replace(next);
            return Some(Reply::new(success(&req)));
        }
        let path = config_file(&next);
        let text = next.to_properties();
        let written =
            tern_runtime::spawn_blocking(move || persist::write_atomic(&path, text.as_bytes()))
                .await;
        if let Err(e) = written {
            return Some(reply(&req, response::SYSTEM_ERROR, e.to_string()));
        }
        let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        tracing::info!(?keys, "broker config updated");
        self.live.replace(next);
        if let Err(r) = self.ask_other_cores(&req, origin).await {
            return Some(r);
        }
        let remark = if later.is_empty() {
            String::new()
        } else {
            format!("takes effect at the next start: {}", later.join(", "))
        };
        Some(reply(&req, response::SUCCESS, remark))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn checks_keys_before_changing_anything() {
        let live = LiveConfig::new(&BrokerConfig::default());
        let (next, later) = live
            .check(&pairs(&[("brokerPermission", "4"), ("brokerName", "b")]))
            .unwrap();
        assert_eq!(later, vec!["brokerName".to_string()]);
        live.replace(next);
        assert_eq!(live.broker_permission(), 4);
        assert_eq!(live.data_version().counter, 1);
        let bad = live.check(&pairs(&[("maxMessageSize", "x")]));
        assert_eq!(bad.unwrap_err().0, response::SYSTEM_ERROR);
        let unknown = live.check(&pairs(&[("noSuchKey", "1")]));
        assert_eq!(unknown.unwrap_err().0, response::SYSTEM_ERROR);
        let black = live.check(&pairs(&[("brokerConfigPath", "/etc/x")]));
        assert_eq!(black.unwrap_err().0, response::NO_PERMISSION);
        assert_eq!(live.broker_permission(), 4);
    }
}
