//! Cluster commands: `clusterList`, `brokerStatus`.

use serde_json::{json, Map, Value};
use tern_net::body::KvTable;
use tern_net::code::request;
use tern_net::RemotingCommand;

use crate::admin::{decode_body, Admin, AdminError};
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
