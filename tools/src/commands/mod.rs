//! The commands that talk to nameservers and brokers, one module per area; [`run`] dispatches.

mod cluster;
mod consumer;
mod kv;
mod message;
mod topic;

use crate::admin::{Admin, AdminError};
use crate::cli::{Command, Target};
use crate::output::Report;

/// Producer group of `sendMessage` and consumer group of the pulls the tools make.
pub const ADMIN_GROUP: &str = "tern-admin";

async fn targets(admin: &Admin, t: &Target) -> Result<Vec<String>, AdminError> {
    admin
        .targets(t.broker_addr.as_deref(), t.cluster.as_deref())
        .await
}

/// Runs one remote command. `shutdown` is local and handled by [`crate::shutdown`]; here it is an
/// [`AdminError::Invalid`].
pub async fn run(admin: &Admin, command: &Command) -> Result<Report, AdminError> {
    match command {
        Command::UpdateTopic {
            topic,
            target,
            read_queues,
            write_queues,
            perm,
            order,
        } => {
            let spec = topic::TopicSpec {
                topic,
                read_queues: *read_queues,
                write_queues: *write_queues,
                perm: *perm,
                order: *order,
            };
            topic::update_topic(admin, &spec, &targets(admin, target).await?).await
        }
        Command::DeleteTopic { topic, cluster } => topic::delete_topic(admin, topic, cluster).await,
        Command::TopicList => topic::topic_list(admin).await,
        Command::TopicRoute { topic } => topic::topic_route(admin, topic).await,
        Command::TopicStatus { topic } => topic::topic_status(admin, topic).await,
        Command::UpdateSubGroup {
            group,
            target,
            consume_enable,
            retry_max_times,
        } => {
            let to = targets(admin, target).await?;
            consumer::update_sub_group(admin, group, *consume_enable, *retry_max_times, &to).await
        }
        Command::DeleteSubGroup { group, target } => {
            consumer::delete_sub_group(admin, group, &targets(admin, target).await?).await
        }
        Command::ConsumerProgress { group, topic } => {
            consumer::consumer_progress(admin, group, topic.as_deref()).await
        }
        Command::ConsumerConnection { group } => consumer::consumer_connection(admin, group).await,
        Command::ClusterList => cluster::cluster_list(admin).await,
        Command::BrokerStatus { target } => {
            cluster::broker_status(admin, &targets(admin, target).await?).await
        }
        Command::GetBrokerConfig { target } => {
            cluster::broker_config(admin, &targets(admin, target).await?).await
        }
        Command::QueryMsgById {
            msg_id,
            broker_addr,
        } => message::query_by_id(admin, msg_id, broker_addr.as_deref()).await,
        Command::QueryMsgByKey {
            topic,
            key,
            begin,
            end,
        } => {
            let query = message::KeyQuery {
                topic,
                key,
                begin: *begin,
                end: *end,
                unique: false,
            };
            message::query_by_key(admin, &query).await
        }
        Command::QueryMsgByUniqueKey {
            topic,
            msg_id,
            begin,
            end,
        } => {
            let query = message::KeyQuery {
                topic,
                key: msg_id,
                begin: *begin,
                end: *end,
                unique: true,
            };
            message::query_by_key(admin, &query).await
        }
        Command::QueryMsgByOffset {
            topic,
            broker_name,
            queue_id,
            offset,
        } => message::query_by_offset(admin, topic, broker_name, *queue_id, *offset).await,
        Command::ResetOffsetByTime {
            group,
            topic,
            timestamp,
        } => {
            let ts = consumer::parse_timestamp(timestamp)?;
            consumer::reset_offset_by_time(admin, group, topic, ts).await
        }
        Command::SendMessage {
            topic,
            body,
            keys,
            tags,
            broker_name,
            queue_id,
        } => {
            let msg = message::Outgoing {
                topic,
                body,
                keys: keys.as_deref(),
                tags: tags.as_deref(),
                broker_name: broker_name.as_deref(),
                queue_id: *queue_id,
            };
            message::send_message(admin, &msg).await
        }
        Command::ConsumeMessage {
            topic,
            broker_name,
            queue_id,
            offset,
            count,
            group,
        } => {
            let spec = message::ConsumeSpec {
                topic,
                broker_name: broker_name.as_deref(),
                queue_id: *queue_id,
                offset: *offset,
                count: *count,
                group,
            };
            message::consume_message(admin, &spec).await
        }
        Command::UpdateKvConfig {
            namespace,
            key,
            value,
        } => kv::update_kv(admin, namespace, key, value).await,
        Command::DeleteKvConfig { namespace, key } => kv::delete_kv(admin, namespace, key).await,
        Command::GetKvList { namespace } => kv::kv_list(admin, namespace).await,
        Command::Shutdown { .. } => Err(AdminError::Invalid(
            "shutdown is a local command".to_string(),
        )),
    }
}
