//! The settings every producer and consumer has (RocketMQ's `ClientConfig`, which
//! `DefaultMQProducer` and both consumers extend): where the nameservers are, the instance name
//! and the periods of the route refresh and the heartbeat. Each builder holds one
//! [`ClientSettings`] and gets its setters from [`client_settings_setters!`], so the keys, their
//! defaults and their documentation are written once.

use std::rc::Rc;
use std::time::Duration;

use crate::transport::RequestHandler;

use super::instance::Instance;
use super::MqError;

/// RocketMQ's `ClientConfig` keys shared by all builders, with RocketMQ's defaults.
#[derive(Debug, Clone)]
pub(crate) struct ClientSettings {
    /// `namesrvAddr`: nameserver addresses separated by `;` (no default: required).
    pub(crate) namesrv_addr: String,
    /// `instanceName`; `None` lets [`Instance::new`] make one unique per client.
    pub(crate) instance_name: Option<String>,
    /// `pollNameServerInterval` (30 s).
    pub(crate) poll_name_server_interval: Duration,
    /// `heartbeatBrokerInterval` (30 s).
    pub(crate) heartbeat_broker_interval: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            namesrv_addr: String::new(),
            instance_name: None,
            poll_name_server_interval: Duration::from_secs(30),
            heartbeat_broker_interval: Duration::from_secs(30),
        }
    }
}

impl ClientSettings {
    /// The client instance these settings describe (`handler` answers the brokers' requests);
    /// fails with [`MqError::NoNamesrv`] without a nameserver address.
    pub(crate) fn instance(
        &self,
        handler: Option<Rc<dyn RequestHandler>>,
    ) -> Result<Instance, MqError> {
        Instance::new(&self.namesrv_addr, self.instance_name.as_deref(), handler)
    }
}

/// `Ok` when the client's group, the setting `key` (`producerGroup`, `consumerGroup`), is set;
/// else the [`MqError::Config`] every builder's `start` fails with.
pub(crate) fn require_group(key: &str, group: &str) -> Result<(), MqError> {
    if group.is_empty() {
        return Err(MqError::Config(format!("{key} is empty")));
    }
    Ok(())
}

/// Writes, inside a builder's `impl` block, the public setters of the named [`ClientSettings`]
/// keys, storing into the builder's settings at the field path given first:
/// `client_settings_setters!(cfg.client; namesrv_addr, heartbeat_broker_interval);`.
/// Each setter has the same name, signature and documentation in every builder.
macro_rules! client_settings_setters {
    ($($field:ident).+ ; $($key:ident),+ $(,)?) => {
        client_settings_setters!(@keys [$($field).+] $($key)+);
    };
    (@keys $path:tt $($key:ident)+) => {
        $( client_settings_setters!(@setter $path $key); )+
    };
    (@setter [$($field:ident).+] namesrv_addr) => {
        /// `namesrvAddr`: nameserver addresses separated by `;` (required).
        pub fn namesrv_addr(mut self, addr: impl Into<String>) -> Self {
            self.$($field).+.namesrv_addr = addr.into();
            self
        }
    };
    (@setter [$($field:ident).+] instance_name) => {
        /// `instanceName` (default: `pid#time`, unique per producer or consumer).
        pub fn instance_name(mut self, name: impl Into<String>) -> Self {
            self.$($field).+.instance_name = Some(name.into());
            self
        }
    };
    (@setter [$($field:ident).+] poll_name_server_interval) => {
        /// `pollNameServerInterval` (30 s): route refresh period.
        pub fn poll_name_server_interval(mut self, t: std::time::Duration) -> Self {
            self.$($field).+.poll_name_server_interval = t;
            self
        }
    };
    (@setter [$($field:ident).+] heartbeat_broker_interval) => {
        /// `heartbeatBrokerInterval` (30 s).
        pub fn heartbeat_broker_interval(mut self, t: std::time::Duration) -> Self {
            self.$($field).+.heartbeat_broker_interval = t;
            self
        }
    };
}
pub(crate) use client_settings_setters;
