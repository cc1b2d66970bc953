//! What the embedded DNS says to one query: an answer from the directory (A, AAAA, PTR for
//! the containers on the asker's networks, TTL 600 as Docker), "ask the host's resolvers"
//! (anything else, unless all the asker's networks are internal), or an error.

use std::net::IpAddr;

use hickory_proto::{
    op::{Message, MessageType, OpCode, Query, ResponseCode},
    rr::{
        Name, RData, Record, RecordType,
        rdata::{A, AAAA, PTR},
    },
};

use super::directory::Directory;

/// Docker's embedded DNS gives its records this TTL.
const TTL: u32 = 600;

/// What to do with one query.
#[derive(Debug)]
pub enum Reply {
    /// Send these bytes back.
    Answer(Vec<u8>),
    /// Not a name the directory has: forward the query to the resolvers.
    Forward,
    /// Say nothing (too short to answer even with an error).
    Nothing,
}

/// The reply to the query `bytes` from the container `asker`.
pub fn reply(directory: &Directory, asker: &str, bytes: &[u8]) -> Reply {
    let Ok(request) = Message::from_vec(bytes) else {
        return error_for_bytes(bytes, ResponseCode::FormErr);
    };
    let metadata = &request.metadata;
    if metadata.message_type != MessageType::Query {
        return Reply::Nothing;
    }
    if metadata.op_code != OpCode::Query {
        return answer(&request, ResponseCode::NotImp, Vec::new());
    }
    let [query] = request.queries.as_slice() else {
        return answer(&request, ResponseCode::FormErr, Vec::new());
    };
    let local = match query.query_type() {
        RecordType::A | RecordType::AAAA => addresses(directory, asker, query),
        RecordType::PTR => pointer(directory, asker, query),
        _ => None,
    };
    match local {
        Some(records) => answer(&request, ResponseCode::NoError, records),
        None if directory.forwards_for(asker) => Reply::Forward,
        None => answer(&request, ResponseCode::NXDomain, Vec::new()),
    }
}

/// The reply saying `code` for a query the resolvers could not answer (all failed).
pub fn failure(bytes: &[u8], code: ResponseCode) -> Reply {
    match Message::from_vec(bytes) {
        Ok(request) => answer(&request, code, Vec::new()),
        Err(_) => error_for_bytes(bytes, code),
    }
}

/// The records for `query` (A or AAAA) when its name is a container's or an alias on a
/// network the asker is on, written `NAME` or `NAME.NETWORK`; `None` when it is not. A name
/// that exists without an address of the type asked gets no records (NOERROR, no data).
fn addresses(directory: &Directory, asker: &str, query: &Query) -> Option<Vec<Record>> {
    let wanted = query.name().to_lowercase().to_ascii();
    let wanted = wanted.trim_end_matches('.');
    let (v4, v6) = directory.lookup(asker, wanted);
    if v4.is_empty() && v6.is_empty() {
        return None;
    }
    let name = query.name().clone();
    let records = match query.query_type() {
        RecordType::A => v4
            .into_iter()
            .map(|ip| Record::from_rdata(name.clone(), TTL, RData::A(A(ip))))
            .collect(),
        _ => v6
            .into_iter()
            .map(|ip| Record::from_rdata(name.clone(), TTL, RData::AAAA(AAAA(ip))))
            .collect(),
    };
    Some(records)
}

/// The PTR record of a container's address on a network the asker is on.
fn pointer(directory: &Directory, asker: &str, query: &Query) -> Option<Vec<Record>> {
    let network = query.name().parse_arpa_name().ok()?;
    let full = match network.addr() {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    if network.prefix_len() != full {
        return None;
    }
    let owner = directory.reverse(asker, network.addr())?;
    let target = Name::from_ascii(format!("{owner}.")).ok()?;
    Some(vec![Record::from_rdata(
        query.name().clone(),
        TTL,
        RData::PTR(PTR(target)),
    )])
}

/// The response to `request` with `code` and `records`.
fn answer(request: &Message, code: ResponseCode, records: Vec<Record>) -> Reply {
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.metadata.response_code = code;
    response.add_queries(request.queries.iter().cloned());
    response.add_answers(records);
    encoded(&response)
}

/// `code` for bytes that are no DNS message: their header's id, when there is a header.
fn error_for_bytes(bytes: &[u8], code: ResponseCode) -> Reply {
    let Some(id) = bytes.get(..2) else {
        return Reply::Nothing;
    };
    if bytes.len() < 12 {
        return Reply::Nothing;
    }
    let mut response = Message::error_msg(u16::from_be_bytes([id[0], id[1]]), OpCode::Query, code);
    response.metadata.recursion_available = true;
    encoded(&response)
}

/// `response` on the wire (nothing, if it cannot be written).
fn encoded(response: &Message) -> Reply {
    match response.to_vec() {
        Ok(bytes) => Reply::Answer(bytes),
        Err(_) => Reply::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use hickory_proto::op::Message;

    use super::*;
    use crate::dns::directory::{Member, Membership};

    fn on(network: &str, ipv4: [u8; 4], aliases: &[&str]) -> Membership {
        Membership {
            network: network.into(),
            internal: network == "sealed",
            named: network != "bridge",
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            ipv4: Ipv4Addr::from(ipv4),
            ipv6: (network == "front")
                .then(|| Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(ipv4[3]))),
        }
    }

    /// a and b on front (b also `web`), c on back, d on sealed (internal), e on bridge.
    fn directory() -> Directory {
        let member = |name: &str, networks: Vec<Membership>| {
            (
                format!("id-{name}"),
                Member {
                    name: name.into(),
                    networks,
                },
            )
        };
        Directory {
            containers: [
                member("a", vec![on("front", [10, 0, 0, 2], &[])]),
                member("b", vec![on("front", [10, 0, 0, 3], &["web"])]),
                member("c", vec![on("back", [10, 1, 0, 2], &[])]),
                member("d", vec![on("sealed", [10, 2, 0, 2], &[])]),
                member("e", vec![on("bridge", [172, 17, 0, 2], &[])]),
            ]
            .into_iter()
            .collect(),
        }
    }

    fn query(name: &str, kind: RecordType) -> Vec<u8> {
        let mut query = Message::new(7, MessageType::Query, OpCode::Query);
        query.add_query(Query::query(Name::from_ascii(name).unwrap(), kind));
        query.to_vec().unwrap()
    }

    fn answered(reply: Reply) -> Message {
        match reply {
            Reply::Answer(bytes) => Message::from_vec(&bytes).unwrap(),
            other => panic!("not an answer: {other:?}"),
        }
    }

    #[test]
    fn names_and_aliases_answer_on_shared_networks_only() {
        let dir = directory();
        let a = answered(reply(&dir, "id-a", &query("WEB.", RecordType::A)));
        assert_eq!(a.metadata.response_code, ResponseCode::NoError);
        assert_eq!(a.answers.len(), 1);
        assert_eq!(a.answers[0].data, RData::A(A(Ipv4Addr::new(10, 0, 0, 3))));
        assert_eq!(a.answers[0].ttl, 600);
        let aaaa = answered(reply(&dir, "id-a", &query("b.front.", RecordType::AAAA)));
        assert_eq!(aaaa.answers.len(), 1);
        // Not across networks, not on the default bridge: forwarded, as unknown names are.
        assert!(matches!(
            reply(&dir, "id-a", &query("c.", RecordType::A)),
            Reply::Forward
        ));
        assert!(matches!(
            reply(&dir, "id-e", &query("e.", RecordType::A)),
            Reply::Forward
        ));
        assert!(matches!(
            reply(&dir, "id-a", &query("b.back.", RecordType::A)),
            Reply::Forward
        ));
        // An internal network never forwards.
        let nx = answered(reply(&dir, "id-d", &query("example.com.", RecordType::A)));
        assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    }

    #[test]
    fn addresses_resolve_back_to_names_on_shared_networks() {
        let dir = directory();
        let ptr = answered(reply(
            &dir,
            "id-a",
            &query("3.0.0.10.in-addr.arpa.", RecordType::PTR),
        ));
        assert_eq!(ptr.answers.len(), 1);
        assert_eq!(
            ptr.answers[0].data,
            RData::PTR(PTR(Name::from_ascii("b.").unwrap()))
        );
        let other = reply(
            &dir,
            "id-a",
            &query("2.0.1.10.in-addr.arpa.", RecordType::PTR),
        );
        assert!(matches!(other, Reply::Forward));
    }

    #[test]
    fn malformed_queries_get_formerr_or_nothing() {
        let dir = directory();
        let mut garbage = vec![0xab; 30];
        garbage[2] = 0;
        let formerr = answered(reply(&dir, "id-a", &garbage));
        assert_eq!(formerr.metadata.response_code, ResponseCode::FormErr);
        assert_eq!(formerr.metadata.id, 0xabab);
        assert!(matches!(reply(&dir, "id-a", &[1, 2, 3]), Reply::Nothing));
        // Two questions in one query.
        let mut two = Message::new(9, MessageType::Query, OpCode::Query);
        two.add_query(Query::query(Name::from_ascii("a.").unwrap(), RecordType::A));
        two.add_query(Query::query(Name::from_ascii("b.").unwrap(), RecordType::A));
        let answer = answered(reply(&dir, "id-a", &two.to_vec().unwrap()));
        assert_eq!(answer.metadata.response_code, ResponseCode::FormErr);
        // A response is not a query: no answer.
        let response = Message::response(5, OpCode::Query).to_vec().unwrap();
        assert!(matches!(reply(&dir, "id-a", &response), Reply::Nothing));
    }
}
