//! The nameserver's settings: defaults, RocketMQ `namesrv.properties` keys, and (in the binary)
//! command-line overrides.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tern_net::transport::ConnectionLimits;

use crate::properties::Property;

/// RocketMQ's BROKER_CHANNEL_EXPIRED_TIME: a broker silent this long is dropped.
pub const DEFAULT_BROKER_EXPIRY: Duration = Duration::from_secs(120);
/// RocketMQ's `scanNotActiveBrokerInterval`.
pub const DEFAULT_SCAN_INTERVAL: Duration = Duration::from_secs(5);
/// RocketMQ's default nameserver port.
pub const DEFAULT_PORT: u16 = 9876;

/// Everything the nameserver needs to run.
#[derive(Debug, Clone)]
pub struct NamesrvConfig {
    /// Listening address (`listenPort` / `bindAddress`).
    pub listen: SocketAddr,
    /// Executors serving connections; the route table is shared by all of them.
    pub cores: usize,
    /// Drop brokers not heard from for this long (unless they registered their own timeout).
    pub broker_expiry: Duration,
    /// How often expired brokers are looked for.
    pub scan_interval: Duration,
    /// Where the KV configuration is kept (`kvConfigPath`); `None` keeps it in memory only.
    pub kv_config_path: Option<PathBuf>,
    /// `orderMessageEnable`: add `orderTopicConf` from the KV store to topic routes.
    pub order_message_enable: bool,
    /// `returnOrderTopicConfigToBroker`: answer REGISTER_BROKER with the ORDER_TOPIC_CONFIG table.
    pub return_order_topic_config_to_broker: bool,
    /// `enableAllTopicList`: serve GET_ALL_TOPIC_LIST_FROM_NAMESERVER.
    pub enable_all_topic_list: bool,
    /// `enableTopicList`: serve GET_TOPICS_BY_CLUSTER.
    pub enable_topic_list: bool,
    /// Per-connection transport limits.
    pub limits: ConnectionLimits,
    /// Port of the Prometheus `/metrics` endpoint (`metricsPort`); 0 turns it off.
    pub metrics_port: u16,
}

impl Default for NamesrvConfig {
    /// RocketMQ's defaults: 0.0.0.0:9876, `~/namesrv/kvConfig.json`, one core.
    fn default() -> Self {
        NamesrvConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)),
            cores: 1,
            broker_expiry: DEFAULT_BROKER_EXPIRY,
            scan_interval: DEFAULT_SCAN_INTERVAL,
            kv_config_path: std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join("namesrv").join("kvConfig.json")),
            order_message_enable: false,
            return_order_topic_config_to_broker: true,
            enable_all_topic_list: true,
            enable_topic_list: true,
            limits: ConnectionLimits::default(),
            metrics_port: 0,
        }
    }
}

/// RocketMQ namesrv/netty keys Tern accepts without acting on them (no warning).
const IGNORED_KEYS: &[&str] = &[
    "configStorePath",
    "productEnvName",
    "clusterTest",
    "clientRequestThreadPoolNums",
    "defaultThreadPoolNums",
    "clientRequestThreadPoolQueueCapacity",
    "defaultThreadPoolQueueCapacity",
    "unRegisterBrokerQueueCapacity",
    "supportActingMaster",
    "notifyMinBrokerIdChanged",
    "enableControllerInNamesrv",
    "needWaitForService",
    "waitSecondsForService",
    "deleteTopicWithBrokerRegistration",
    "configBlackList",
    "serverWorkerThreads",
    "serverCallbackExecutorThreads",
    "serverSelectorThreads",
    "serverOnewaySemaphoreValue",
    "serverAsyncSemaphoreValue",
    "serverSocketSndBufSize",
    "serverSocketRcvBufSize",
    "serverPooledByteBufAllocatorEnable",
    "useEpollNativeSelector",
];

/// A `namesrv.properties` entry that could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {key}={value}: {reason}")]
pub struct PropertyWarning {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
    /// Its line.
    pub line: usize,
    /// Why it was not applied.
    pub reason: &'static str,
}

impl NamesrvConfig {
    /// Applies RocketMQ `namesrv.properties` entries; returns the entries that were unknown or
    /// unparsable (the caller logs them). `rocketmqHome` sets the KV path to
    /// `<home>/namesrv/kvConfig.json` unless `kvConfigPath` is given too.
    pub fn apply_properties(&mut self, props: &[Property]) -> Vec<PropertyWarning> {
        let mut warnings = Vec::new();
        let mut explicit_kv_path = false;
        let mut home = None;
        for p in props {
            let v = p.value.trim();
            let bad = |reason| PropertyWarning {
                key: p.key.clone(),
                value: p.value.clone(),
                line: p.line,
                reason,
            };
            let flag = |target: &mut bool| *target = v.eq_ignore_ascii_case("true");
            match p.key.as_str() {
                "listenPort" => match v.parse::<u16>() {
                    Ok(port) => self.listen.set_port(port),
                    Err(_) => warnings.push(bad("not a port number")),
                },
                "bindAddress" => match v.parse() {
                    Ok(ip) => self.listen.set_ip(ip),
                    Err(_) => warnings.push(bad("not an IP address")),
                },
                "kvConfigPath" => {
                    self.kv_config_path = Some(PathBuf::from(v));
                    explicit_kv_path = true;
                }
                "rocketmqHome" => home = Some(PathBuf::from(v)),
                "metricsPort" => match v.parse::<u16>() {
                    Ok(port) => self.metrics_port = port,
                    Err(_) => warnings.push(bad("not a port number")),
                },
                "scanNotActiveBrokerInterval" => match v.parse::<u64>() {
                    Ok(ms) if ms > 0 => self.scan_interval = Duration::from_millis(ms),
                    _ => warnings.push(bad("not a positive number of milliseconds")),
                },
                "orderMessageEnable" => flag(&mut self.order_message_enable),
                "returnOrderTopicConfigToBroker" => {
                    flag(&mut self.return_order_topic_config_to_broker)
                }
                "enableAllTopicList" => flag(&mut self.enable_all_topic_list),
                "enableTopicList" => flag(&mut self.enable_topic_list),
                "serverChannelMaxIdleTimeSeconds" => match v.parse::<u64>() {
                    Ok(0) => self.limits.idle_timeout = None,
                    Ok(s) => self.limits.idle_timeout = Some(Duration::from_secs(s)),
                    Err(_) => warnings.push(bad("not a number of seconds")),
                },
                k if IGNORED_KEYS.contains(&k) => {}
                _ => warnings.push(bad("unknown key")),
            }
        }
        if let (Some(home), false) = (home, explicit_kv_path) {
            self.kv_config_path = Some(home.join("namesrv").join("kvConfig.json"));
        }
        warnings
    }
}

impl NamesrvConfig {
    /// The settings as `namesrv.properties` lines (`key=value\n`, RocketMQ's names, sorted), as
    /// `mqnamesrv -p` prints them. Reading the output back with
    /// [`apply_properties`](NamesrvConfig::apply_properties) gives the same settings and no warning.
    pub fn to_properties(&self) -> String {
        let mut pairs: Vec<(&str, String)> = vec![
            ("bindAddress", self.listen.ip().to_string()),
            ("enableAllTopicList", self.enable_all_topic_list.to_string()),
            ("enableTopicList", self.enable_topic_list.to_string()),
            ("listenPort", self.listen.port().to_string()),
            ("metricsPort", self.metrics_port.to_string()),
            ("orderMessageEnable", self.order_message_enable.to_string()),
            (
                "returnOrderTopicConfigToBroker",
                self.return_order_topic_config_to_broker.to_string(),
            ),
            (
                "scanNotActiveBrokerInterval",
                self.scan_interval.as_millis().to_string(),
            ),
            (
                "serverChannelMaxIdleTimeSeconds",
                self.limits
                    .idle_timeout
                    .map_or(0, |d| d.as_secs())
                    .to_string(),
            ),
        ];
        // No line when the KV configuration is kept in memory only (no HOME): there is no path.
        if let Some(p) = &self.kv_config_path {
            pairs.push(("kvConfigPath", p.display().to_string()));
        }
        pairs.sort_by_key(|(k, _)| *k);
        pairs.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
    }

    /// The lines of [`to_properties`](NamesrvConfig::to_properties) an operator checks first, as
    /// `mqnamesrv -m` prints them (RocketMQ's `@ImportantField`s: where it listens, where the KV
    /// configuration lives).
    pub fn important_properties(&self) -> String {
        self.to_properties()
            .lines()
            .filter(|l| {
                ["listenPort=", "bindAddress=", "kvConfigPath="]
                    .iter()
                    .any(|k| l.starts_with(k))
            })
            .map(|l| format!("{l}\n"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::properties::parse;

    #[test]
    fn properties_apply_and_unknown_keys_warn() {
        let mut c = NamesrvConfig::default();
        let props = parse(
            "listenPort=9877\nkvConfigPath=/tmp/kv.json\norderMessageEnable=true\n\
             serverWorkerThreads=8\nbogusKey=1\nscanNotActiveBrokerInterval=x\n",
        );
        let warnings = c.apply_properties(&props);
        assert_eq!(c.listen.port(), 9877);
        assert_eq!(c.kv_config_path, Some(PathBuf::from("/tmp/kv.json")));
        assert!(c.order_message_enable);
        let keys: Vec<_> = warnings.iter().map(|w| w.key.as_str()).collect();
        assert_eq!(keys, ["bogusKey", "scanNotActiveBrokerInterval"]);
        assert_eq!(warnings[0].line, 5);
    }

    #[test]
    fn printed_properties_read_back_to_the_same_settings() {
        let mut c = NamesrvConfig::default();
        c.apply_properties(&parse(
            "listenPort=9877\nbindAddress=127.0.0.1\nkvConfigPath=/tmp/kv.json\n\
             orderMessageEnable=true\nscanNotActiveBrokerInterval=7000\n\
             serverChannelMaxIdleTimeSeconds=0\nmetricsPort=5557\nenableTopicList=false\n",
        ));
        let text = c.to_properties();
        let mut back = NamesrvConfig::default();
        assert_eq!(back.apply_properties(&parse(&text)), []);
        assert_eq!(back.to_properties(), text);
        assert_eq!(back.listen, c.listen);
        assert_eq!(back.scan_interval, Duration::from_millis(7000));
        assert_eq!(back.limits.idle_timeout, None);
        assert_eq!(
            c.important_properties(),
            "bindAddress=127.0.0.1\nkvConfigPath=/tmp/kv.json\nlistenPort=9877\n"
        );
    }

    #[test]
    fn idle_timeout_comes_from_rocketmqs_key() {
        let mut c = NamesrvConfig::default();
        assert_eq!(c.limits.idle_timeout, Some(Duration::from_secs(120)));
        assert!(c
            .apply_properties(&parse("serverChannelMaxIdleTimeSeconds=5\n"))
            .is_empty());
        assert_eq!(c.limits.idle_timeout, Some(Duration::from_secs(5)));
        c.apply_properties(&parse("serverChannelMaxIdleTimeSeconds=0\n"));
        assert_eq!(c.limits.idle_timeout, None);
    }

    #[test]
    fn rocketmq_home_sets_the_kv_path() {
        let mut c = NamesrvConfig::default();
        c.apply_properties(&parse("rocketmqHome=/opt/rmq\n"));
        assert_eq!(
            c.kv_config_path,
            Some(PathBuf::from("/opt/rmq/namesrv/kvConfig.json"))
        );
    }
}
