//! A config kept as its encoded resources, which is what a snapshot holds of the config it was
//! built from. The encoded form is several times smaller than the decoded one (an endpoint's
//! labels and strings each cost an allocation decoded). It shares its buffers with the
//! discovery client's copy, and is decoded only where needed: a cluster or route table on first
//! use, the whole config for `/config_dump`.

use bytes::Bytes;
use mesh_proto::config::v1 as pb;
use prost::Message;

/// A config as the encoded resources of each type, in config order.
#[derive(Clone, Debug, Default)]
pub struct EncodedConfig {
    /// Encoded `Listener`s.
    pub listeners: Vec<Bytes>,
    /// Encoded `RouteConfig`s.
    pub routes: Vec<Bytes>,
    /// Encoded `Cluster`s.
    pub clusters: Vec<Bytes>,
    /// Encoded `ClusterLoadAssignment`s.
    pub endpoints: Vec<Bytes>,
    /// Encoded `Telemetry` (at most one).
    pub telemetry: Vec<Bytes>,
}

impl EncodedConfig {
    /// Encodes every resource of `config`.
    pub fn encode(config: &pb::ProxyConfig) -> Self {
        fn each<M: Message>(messages: &[M]) -> Vec<Bytes> {
            messages.iter().map(|m| m.encode_to_vec().into()).collect()
        }
        EncodedConfig {
            listeners: each(&config.listeners),
            routes: each(&config.routes),
            clusters: each(&config.clusters),
            endpoints: each(&config.endpoints),
            telemetry: each(&config.telemetry),
        }
    }

    /// The whole config, decoded.
    pub fn decode(&self) -> Result<pb::ProxyConfig, prost::DecodeError> {
        fn each<M: Message + Default>(encoded: &[Bytes]) -> Result<Vec<M>, prost::DecodeError> {
            encoded.iter().map(|b| M::decode(b.clone())).collect()
        }
        Ok(pb::ProxyConfig {
            listeners: each(&self.listeners)?,
            routes: each(&self.routes)?,
            clusters: each(&self.clusters)?,
            endpoints: each(&self.endpoints)?,
            telemetry: each(&self.telemetry)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_gives_back_what_was_encoded() {
        let config = pb::ProxyConfig {
            clusters: vec![pb::Cluster {
                name: "web".into(),
                ..Default::default()
            }],
            endpoints: vec![pb::ClusterLoadAssignment {
                cluster: "web".into(),
                endpoints: vec![pb::Endpoint {
                    address: "10.0.0.1:80".into(),
                    labels: [("app".to_owned(), "web".to_owned())].into(),
                    ..Default::default()
                }],
            }],
            ..Default::default()
        };
        let encoded = EncodedConfig::encode(&config);
        assert_eq!(encoded.clusters.len(), 1);
        assert_eq!(encoded.decode().expect("decodes"), config);
    }
}
