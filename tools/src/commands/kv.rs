//! Nameserver KV configuration commands: `updateKvConfig`, `deleteKvConfig`, `getKvList`.

use tern_net::body::KvTable;
use tern_net::code::{request, response};
use tern_net::header::{
    DeleteKVConfigRequestHeader, GetKVListByNamespaceRequestHeader, PutKVConfigRequestHeader,
};
use tern_net::RemotingCommand;

use crate::admin::{check, decode_body, Admin, AdminError};
use crate::output::{Report, Table};

/// PUT_KV_CONFIG (100) to every nameserver of the list.
pub async fn update_kv(
    admin: &Admin,
    namespace: &str,
    key: &str,
    value: &str,
) -> Result<Report, AdminError> {
    let header = PutKVConfigRequestHeader {
        namespace: namespace.to_string(),
        key: key.to_string(),
        value: value.to_string(),
    };
    let mut table = Table::new(&["Namesrv", "Namespace", "Key", "Value"]);
    for addr in admin.namesrv_addrs() {
        let cmd = RemotingCommand::request(request::PUT_KV_CONFIG).with_header(&header);
        admin.invoke_ok(addr, cmd).await?;
        table.push([addr.as_str(), namespace, key, value]);
    }
    Ok(Report::from_table(&table))
}

/// DELETE_KV_CONFIG (102) to every nameserver of the list.
pub async fn delete_kv(admin: &Admin, namespace: &str, key: &str) -> Result<Report, AdminError> {
    let header = DeleteKVConfigRequestHeader {
        namespace: namespace.to_string(),
        key: key.to_string(),
    };
    let mut table = Table::new(&["Namesrv", "Namespace", "Key", "Result"]);
    for addr in admin.namesrv_addrs() {
        let cmd = RemotingCommand::request(request::DELETE_KV_CONFIG).with_header(&header);
        admin.invoke_ok(addr, cmd).await?;
        table.push([addr.as_str(), namespace, key, "deleted"]);
    }
    Ok(Report::from_table(&table))
}

/// GET_KVLIST_BY_NAMESPACE (219) from the first nameserver that answers.
pub async fn kv_list(admin: &Admin, namespace: &str) -> Result<Report, AdminError> {
    let cmd = RemotingCommand::request(request::GET_KVLIST_BY_NAMESPACE).with_header(
        &GetKVListByNamespaceRequestHeader {
            namespace: namespace.to_string(),
        },
    );
    let rsp = admin.namesrv(cmd).await?;
    if rsp.code == response::QUERY_NOT_FOUND {
        return Err(AdminError::NotFound(format!(
            "namespace {namespace} has no KV config"
        )));
    }
    let rsp = check("nameserver", request::GET_KVLIST_BY_NAMESPACE, rsp)?;
    let kv: KvTable = decode_body("nameserver", &rsp)?;
    let mut table = Table::new(&["Key", "Value"]);
    for (k, v) in &kv.table {
        table.push([k.as_str(), v.as_str()]);
    }
    Ok(Report {
        text: table.render(),
        json: serde_json::json!(kv.table),
    })
}
