//! Prometheus metrics (`xnetd --metrics-addr`, Docker's flag; off unless asked): `GET /metrics`
//! on a TCP address, in the OpenMetrics text format Prometheus scrapes. Every scrape reads the
//! datapath afresh ([`Daemon::observe`]): the per-endpoint and drop counters live in per-CPU
//! maps, so nothing is kept or sampled in between. Only the API's request latencies are
//! recorded as requests end ([`observe_request`]).

use std::{
    net::SocketAddr,
    sync::{Arc, LazyLock},
};

use anyhow::Context as _;
use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::{Registry, Unit},
};
use tokio::net::TcpListener;

use crate::daemon::{Daemon, Observation};

/// The content type of the OpenMetrics text format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// The route's pattern (`/containers/{name}`), so names do not make new series.
    route: String,
    method: String,
}

type Latencies = Family<RequestLabels, Histogram, fn() -> Histogram>;

/// How long the API's requests took, by route: 0.5 ms to 16 s in powers of two. Process-wide,
/// as request handling is; shown only when metrics are served.
static API_LATENCY: LazyLock<Latencies> = LazyLock::new(|| {
    Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0005, 2.0, 16)))
});

/// Records one API request (`route` its pattern, or the path where no route matched).
pub fn observe_request(route: &str, method: &str, seconds: f64) {
    API_LATENCY
        .get_or_create(&RequestLabels {
            route: route.to_string(),
            method: method.to_string(),
        })
        .observe(seconds);
}

/// The metrics' listener, bound before the daemon starts so that a taken address stops it
/// with nothing made.
pub async fn bind(address: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("binding --metrics-addr {address}"))
}

/// Serves `GET /metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    daemon: Arc<Daemon>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let address = listener.local_addr()?;
    let routes = Router::new()
        .route("/metrics", get(scrape))
        .with_state(daemon);
    axum::serve(listener, routes)
        .with_graceful_shutdown(shutdown)
        .await
        .with_context(|| format!("serving metrics on {address}"))
}

async fn scrape(State(daemon): State<Arc<Daemon>>) -> Response {
    let observation = daemon.observe().await;
    match render(&observation) {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    container: String,
    network: String,
    /// `rx` (into the container) or `tx` (from it).
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ContainerLabels {
    container: String,
    network: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MapLabels {
    map: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    peer: String,
    address: String,
    /// `keyed` when encrypted overlays reach it, `unkeyed` when they cannot yet.
    encryption: &'static str,
}

/// The text of one scrape: `observation` and the request latencies so far.
fn render(observation: &Observation) -> anyhow::Result<String> {
    let mut registry = Registry::with_prefix("xnet");

    let packets = Family::<EndpointLabels, Counter>::default();
    let bytes = Family::<EndpointLabels, Counter>::default();
    let endpoint_drops = Family::<ContainerLabels, Counter>::default();
    for c in &observation.stats.containers {
        let labels = |direction| EndpointLabels {
            container: c.name.clone(),
            network: c.network.clone(),
            direction,
        };
        packets.get_or_create(&labels("rx")).inc_by(c.rx_packets);
        packets.get_or_create(&labels("tx")).inc_by(c.tx_packets);
        bytes.get_or_create(&labels("rx")).inc_by(c.rx_bytes);
        bytes.get_or_create(&labels("tx")).inc_by(c.tx_bytes);
        endpoint_drops
            .get_or_create(&ContainerLabels {
                container: c.name.clone(),
                network: c.network.clone(),
            })
            .inc_by(c.drops);
    }
    registry.register(
        "endpoint_packets",
        "Packets through a container's endpoint, as the datapath counted them",
        packets,
    );
    registry.register_with_unit(
        "endpoint",
        "Bytes through a container's endpoint",
        Unit::Bytes,
        bytes,
    );
    registry.register(
        "endpoint_drops",
        "Packets from or to a container's endpoint that the datapath dropped",
        endpoint_drops,
    );

    let drops = Family::<ReasonLabels, Counter>::default();
    for (reason, count) in &observation.stats.drops {
        drops
            .get_or_create(&ReasonLabels {
                reason: reason.clone(),
            })
            .inc_by(*count);
    }
    registry.register(
        "drops",
        "Packets the datapath dropped, by reason (the names of `xnet stats`)",
        drops,
    );

    let entries = Family::<MapLabels, Gauge>::default();
    let capacity = Family::<MapLabels, Gauge>::default();
    for map in &observation.maps {
        let labels = MapLabels {
            map: map.name.clone(),
        };
        entries.get_or_create(&labels).set(i64::from(map.entries));
        capacity.get_or_create(&labels).set(i64::from(map.capacity));
    }
    registry.register(
        "map_entries",
        "Entries in a datapath map that grows (hash, LRU, LPM trie); NAT_FLOWS, NAT_REPLIES and PUBLISH_FLOWS are the flow tables",
        entries,
    );
    registry.register(
        "map_capacity",
        "The most entries a datapath map holds (LRU maps then evict their oldest flows)",
        capacity,
    );

    registry.register_with_unit(
        "api_request_duration",
        "How long xnetd took to answer an API request, by route",
        Unit::Seconds,
        API_LATENCY.clone(),
    );

    if let Some(up) = observation.store_up {
        let store_up = Gauge::<i64>::default();
        store_up.set(i64::from(up));
        registry.register(
            "cluster_store_up",
            "1 while the cluster's store answers, else 0",
            store_up,
        );
        let peers = Family::<PeerLabels, Gauge>::default();
        for peer in &observation.peers {
            peers
                .get_or_create(&PeerLabels {
                    peer: peer.name.clone(),
                    address: peer.address.to_string(),
                    encryption: if peer.keyed { "keyed" } else { "unkeyed" },
                })
                .set(1);
        }
        registry.register(
            "overlay_peer",
            "The other live hosts of the cluster (1 each), where this host's overlay traffic goes",
            peers,
        );
    }
    if let Some(worker) = &observation.stats.encryption {
        for (name, help, value) in [
            (
                "encryption_sealed_packets",
                "Packets sealed for other hosts",
                worker.sealed,
            ),
            (
                "encryption_opened_packets",
                "Packets from other hosts opened",
                worker.opened,
            ),
            (
                "encryption_handshakes",
                "Handshakes completed with other hosts",
                worker.handshakes,
            ),
        ] {
            let counter = Counter::<u64>::default();
            counter.inc_by(value);
            registry.register(name, help, counter);
        }
    }

    let mut text = String::new();
    encode(&mut text, &registry)?;
    Ok(text)
}
