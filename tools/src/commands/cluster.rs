//! Cluster commands: `clusterList`, `brokerStatus`, `getBrokerConfig`.

use serde_json::{json, Map, Value};
use tern_net::body::KvTable;
use tern_net::code::request;
use tern_net::RemotingCommand;

use crate::admin::{bad_body, decode_body, Admin, AdminError};
use crate::output::{Report, Table};

/// GET_BROKER_CLUSTER_INFO (106): one row per broker replica.
pub async fn cluster_list(admin: &Admin) -> Result<Report, AdminError> {
    let info = admin.cluster_info().await?;
    let mut table = Table::new(&["Cluster", "BrokerName", "BrokerId", "Address"]);
    for (cluster, names) in &info.cluster_addr_table {
        for name in names {
            let Some(data) = info.broker_addr_table.get(name) else {
                continue;
            };
            for (id, addr) in &data.broker_addrs {
                table.push([cluster.clone(), name.clone(), id.to_string(), addr.clone()]);
            }
        }
    }
    Ok(Report::from_table(&table))
}

/// GET_BROKER_RUNTIME_INFO (28) to each target: its key/value table.
pub async fn broker_status(admin: &Admin, targets: &[String]) -> Result<Report, AdminError> {
    let mut table = Table::new(&["Broker", "Key", "Value"]);
    let mut json = Map::new();
    for addr in targets {
        let rsp = admin
            .invoke_ok(
                addr,
                RemotingCommand::request(request::GET_BROKER_RUNTIME_INFO),
            )
            .await?;
        let kv: KvTable = decode_body(addr, &rsp)?;
        for (k, v) in &kv.table {
            table.push([addr.as_str(), k.as_str(), v.as_str()]);
        }
        json.insert(addr.clone(), json!(kv.table));
    }
    Ok(Report {
        text: table.render(),
        json: Value::Object(json),
    })
}

/// The `key=value` lines of a GET_BROKER_CONFIG body (Java properties text as RocketMQ writes it:
/// blank lines and `#` comments skipped, whitespace around key and value trimmed), in body order.
/// A line without `=` is a typed error.
fn parse_properties(addr: &str, body: &[u8]) -> Result<Vec<(String, String)>, AdminError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| bad_body(addr, "broker config", format!("not UTF-8: {e}")))?;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| bad_body(addr, "broker config", format!("line {line:?} has no '='")))?;
        out.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(out)
}

/// GET_BROKER_CONFIG (26) to each target: its settings, sorted by key.
pub async fn broker_config(admin: &Admin, targets: &[String]) -> Result<Report, AdminError> {
    let mut table = Table::new(&["Broker", "Key", "Value"]);
    let mut json = Map::new();
    for addr in targets {
        let rsp = admin
            .invoke_ok(addr, RemotingCommand::request(request::GET_BROKER_CONFIG))
            .await?;
        let mut settings = parse_properties(addr, &rsp.body)?;
        settings.sort();
        let mut obj = Map::new();
        for (k, v) in settings {
            table.push([addr.clone(), k.clone(), v.clone()]);
            obj.insert(k, Value::String(v));
        }
        json.insert(addr.clone(), Value::Object(obj));
    }
    Ok(Report {
        text: table.render(),
        json: Value::Object(json),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_config_lines_parse_as_properties() {
        let body = b"# comment\nbrokerName=broker-a\n\n listenPort = 10911\nempty=\n";
        assert_eq!(
            parse_properties("b:1", body).unwrap(),
            [
                ("brokerName".to_string(), "broker-a".to_string()),
                ("listenPort".to_string(), "10911".to_string()),
                ("empty".to_string(), String::new()),
            ]
        );
        let err = parse_properties("b:1", b"novalue\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "b:1 sent a malformed broker config body: line \"novalue\" has no '='"
        );
    }
}
