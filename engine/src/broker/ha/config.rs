//! Replication settings: RocketMQ's `MessageStoreConfig` keys (plus one Tern key).
//!
//! | key | field | default |
//! |---|---|---|
//! | haListenPort | `listen_port` | `listenPort + 1` |
//! | haSendHeartbeatInterval | `heartbeat_interval` (longest wait of a slave's fetch) | 5000 ms |
//! | haMasterAddress | `master_address` (else the `haServerAddr` the nameserver returns) | none |
//! | haMaxGapNotInSync | `max_gap_not_in_sync` (a slave further behind is "not available") | 256 MiB |
//! | accessMessageInMemoryMaxRatio | `access_message_in_memory_max_ratio` (% of RAM) | 40 |
//! | slaveReadEnable | `slave_read_enable` (a master may steer readers to a slave) | false |
//! | slaveSyncConfigInterval (Tern) | `sync_config_interval` (slave copies topics, groups, offsets) | 10000 ms |

use std::time::Duration;

/// The replication settings of a broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaConfig {
    /// Port of the HA listener; `None` means the broker's port + 1.
    pub listen_port: Option<u16>,
    /// A slave reports its progress at least this often (its fetch waits at most this long).
    pub heartbeat_interval: Duration,
    /// The master's HA address a slave uses; `None` means the one learned from the nameserver.
    pub master_address: Option<String>,
    /// Bytes a slave may lag and still count as available to a SYNC_MASTER.
    pub max_gap_not_in_sync: u64,
    /// Percent of physical memory a consumer may lag behind before pulls suggest the slave.
    pub access_message_in_memory_max_ratio: u32,
    /// Whether a master's pull answers may suggest another broker of the group (RocketMQ's
    /// `slaveReadEnable`); when false they always suggest the master.
    pub slave_read_enable: bool,
    /// How often a slave copies the master's topics, groups and consumer offsets.
    pub sync_config_interval: Duration,
}

impl Default for HaConfig {
    fn default() -> Self {
        HaConfig {
            listen_port: None,
            heartbeat_interval: Duration::from_secs(5),
            master_address: None,
            max_gap_not_in_sync: 256 * 1024 * 1024,
            access_message_in_memory_max_ratio: 40,
            slave_read_enable: false,
            sync_config_interval: Duration::from_secs(10),
        }
    }
}

impl HaConfig {
    /// Applies `key = value` when `key` is a replication key: `Ok(true)` applied, `Ok(false)` not
    /// a replication key, `Err(reason)` a bad value.
    pub fn set(&mut self, key: &str, v: &str) -> Result<bool, &'static str> {
        let ms = |v: &str| {
            v.parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| "expected milliseconds")
        };
        match key {
            "haListenPort" => {
                self.listen_port = Some(v.parse().map_err(|_| "expected a TCP port")?);
            }
            "haSendHeartbeatInterval" => self.heartbeat_interval = ms(v)?,
            "haMasterAddress" => {
                self.master_address = Some(v.to_string()).filter(|s| !s.is_empty());
            }
            "haMaxGapNotInSync" => {
                self.max_gap_not_in_sync = v.parse().map_err(|_| "expected bytes")?;
            }
            "accessMessageInMemoryMaxRatio" => {
                let r: u32 = v.parse().map_err(|_| "expected a percentage")?;
                if r > 100 {
                    return Err("percentage above 100");
                }
                self.access_message_in_memory_max_ratio = r;
            }
            "slaveReadEnable" => {
                self.slave_read_enable = v.parse().map_err(|_| "expected true or false")?;
            }
            "slaveSyncConfigInterval" => self.sync_config_interval = ms(v)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The HA port for a broker listening on `listen_port`.
    pub fn port(&self, listen_port: u16) -> u16 {
        self.listen_port
            .unwrap_or_else(|| listen_port.wrapping_add(1))
    }

    /// `key=value` lines for the effective settings (`tern-broker -p`).
    pub fn print(&self, listen_port: u16, out: &mut Vec<(&'static str, String)>) {
        out.push(("haListenPort", self.port(listen_port).to_string()));
        out.push((
            "haSendHeartbeatInterval",
            self.heartbeat_interval.as_millis().to_string(),
        ));
        if let Some(a) = &self.master_address {
            out.push(("haMasterAddress", a.clone()));
        }
        out.push(("haMaxGapNotInSync", self.max_gap_not_in_sync.to_string()));
        out.push((
            "accessMessageInMemoryMaxRatio",
            self.access_message_in_memory_max_ratio.to_string(),
        ));
        out.push(("slaveReadEnable", self.slave_read_enable.to_string()));
        out.push((
            "slaveSyncConfigInterval",
            self.sync_config_interval.as_millis().to_string(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_apply_and_defaults_follow_rocketmq() {
        let mut c = HaConfig::default();
        assert_eq!(c.port(10911), 10912);
        assert_eq!(c.set("haListenPort", "20000"), Ok(true));
        assert_eq!(c.port(10911), 20000);
        assert_eq!(c.set("haSendHeartbeatInterval", "200"), Ok(true));
        assert_eq!(c.heartbeat_interval, Duration::from_millis(200));
        assert_eq!(c.set("haMasterAddress", "10.0.0.1:10912"), Ok(true));
        assert_eq!(c.master_address.as_deref(), Some("10.0.0.1:10912"));
        assert_eq!(
            c.set("accessMessageInMemoryMaxRatio", "101"),
            Err("percentage above 100")
        );
        assert!(!c.slave_read_enable, "RocketMQ's default");
        assert_eq!(c.set("slaveReadEnable", "true"), Ok(true));
        assert!(c.slave_read_enable);
        assert_eq!(
            c.set("slaveReadEnable", "yes"),
            Err("expected true or false")
        );
        assert_eq!(c.set("brokerName", "x"), Ok(false));
    }
}
