//! The monitor's events (`xnet monitor`) as the programs write them: nothing while no monitor
//! is attached; a frame a container sent (traced) and its drop, with the frame's addresses,
//! protocol and ports, or ARP's; at most the rate limit's events in a second, the rest
//! counted as lost.

use aya::maps::{Array, MapData, PerCpuArray, RingBuf};
use xnet_common::{
    DropReason, EVENT_DROP, EVENT_FROM_CONTAINER, MAP_MONITOR, MAP_MONITOR_BUDGET,
    MAP_MONITOR_EVENTS, MONITOR_DROPS, MONITOR_TRACE, MonitorBudget, MonitorConfig, MonitorEvent,
};
use xnet_dockerlab::skip;

use super::{
    Datapath, LOOPBACK, ME_IP, ME_MAC, PEER_MAC, STRANGER_IP, STRANGER_MAC, arp, udp, udp_from_me,
};

impl Datapath {
    fn set_monitor(&mut self, kinds: u32, events_per_second: u32) {
        let mut config: Array<&mut MapData, MonitorConfig> =
            Array::try_from(self.ebpf.map_mut(MAP_MONITOR).unwrap()).unwrap();
        let value = MonitorConfig {
            kinds,
            events_per_second,
        };
        config.set(0, value, 0).unwrap();
    }

    /// The events in the ring, oldest first (taking them out).
    fn events(&mut self) -> Vec<MonitorEvent> {
        let mut ring = RingBuf::try_from(self.ebpf.map_mut(MAP_MONITOR_EVENTS).unwrap()).unwrap();
        let mut events = Vec::new();
        while let Some(record) = ring.next() {
            events.push(xnet::datapath::decode_event(&record).expect("a whole event"));
        }
        events
    }

    fn lost_events(&self) -> u64 {
        let budget: PerCpuArray<&MapData, MonitorBudget> =
            PerCpuArray::try_from(self.ebpf.map(MAP_MONITOR_BUDGET).unwrap()).unwrap();
        budget.get(&0, 0).unwrap().iter().map(|b| b.lost).sum()
    }
}

fn address(event_address: [u8; 16]) -> [u8; 4] {
    event_address[..4].try_into().unwrap()
}

#[test]
fn drops_are_reported_with_the_frame_only_while_a_monitor_asks() {
    if skip::unless_root() {
        return;
    }
    let mut dp = Datapath::new();
    dp.assert_dropped(
        &udp_from_me(STRANGER_MAC, STRANGER_IP),
        DropReason::OtherNetwork,
    );
    assert!(dp.events().is_empty(), "events with no monitor attached");

    dp.set_monitor(MONITOR_DROPS | MONITOR_TRACE, 100);
    dp.assert_dropped(
        &udp_from_me(STRANGER_MAC, STRANGER_IP),
        DropReason::OtherNetwork,
    );
    let events = dp.events();
    assert_eq!(events.len(), 2, "{events:?}");
    let (sent, dropped) = (events[0], events[1]);
    assert_eq!(sent.kind, EVENT_FROM_CONTAINER);
    assert_eq!(dropped.kind, EVENT_DROP);
    assert_eq!(dropped.reason, DropReason::OtherNetwork as u8);
    for event in [sent, dropped] {
        assert_eq!(event.ifindex, LOOPBACK);
        assert_eq!(event.ether_type, 0x0800);
        assert_eq!(event.protocol, 17);
        assert_eq!(address(event.src), ME_IP);
        assert_eq!(address(event.dst), STRANGER_IP);
        assert_eq!((event.src_port, event.dst_port), (12345, 80));
        assert_eq!(event.len, 46);
        assert_eq!(event.src[4..], [0; 12]);
    }

    // Drops only: a forged ARP sender is reported with ARP's addresses and operation.
    dp.set_monitor(MONITOR_DROPS, 100);
    dp.assert_dropped(
        &arp(2, ME_MAC, [10, 0, 0, 77], [10, 0, 0, 1]),
        DropReason::SpoofedIp,
    );
    let events = dp.events();
    assert_eq!(events.len(), 1, "{events:?}");
    let forged = events[0];
    assert_eq!(forged.reason, DropReason::SpoofedIp as u8);
    assert_eq!(forged.ether_type, 0x0806);
    assert_eq!(address(forged.src), [10, 0, 0, 77]);
    assert_eq!(address(forged.dst), [10, 0, 0, 1]);
    assert_eq!((forged.protocol, forged.dst_port), (0, 2));

    // Switched off again: nothing.
    dp.set_monitor(0, 100);
    dp.assert_dropped(
        &udp(PEER_MAC, STRANGER_MAC, ME_IP, STRANGER_IP),
        DropReason::SpoofedMac,
    );
    assert!(dp.events().is_empty());
}

#[test]
fn events_over_the_rate_limit_are_counted_as_lost() {
    if skip::unless_root() {
        return;
    }
    let mut dp = Datapath::new();
    dp.set_monitor(MONITOR_DROPS, 3);
    for _ in 0..10 {
        dp.assert_dropped(
            &udp_from_me(STRANGER_MAC, STRANGER_IP),
            DropReason::OtherNetwork,
        );
    }
    // Well inside one second: three events on each CPU the runs happened on (the test's
    // thread may move), the rest lost; each drop is one or the other.
    let cpus = std::thread::available_parallelism().unwrap().get();
    let (events, lost) = (dp.events().len(), dp.lost_events() as usize);
    assert_eq!(events + lost, 10, "{events} events, {lost} lost");
    assert!((3..=3 * cpus).contains(&events), "{events} events");
}
