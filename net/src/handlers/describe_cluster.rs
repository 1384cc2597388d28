//! DescribeCluster: one broker, which is also the controller.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use crate::caps::Cluster;

pub fn handle(ctx: Cluster<'_>, _version: i16, _req: DescribeClusterRequest) -> DescribeClusterResponse {
    let c = ctx.config;
    let broker = DescribeClusterBroker::default()
        .with_broker_id(BrokerId(c.node_id))
        .with_host(StrBytes::from_string(c.advertised_host.clone()))
        .with_port(c.advertised_port);
    DescribeClusterResponse::default()
        .with_endpoint_type(1)
        .with_cluster_id(StrBytes::from_string(c.cluster_id.clone()))
        .with_controller_id(BrokerId(c.node_id))
        .with_brokers(vec![broker])
}
