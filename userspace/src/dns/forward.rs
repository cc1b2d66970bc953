//! Names the directory does not have go to the host's resolvers (`nameserver` lines of the
//! host's resolv.conf, or a container's `--dns`), asked from the daemon's namespace, the
//! host's: one after the other, the next on a timeout or SERVFAIL, as a stub resolver does.

use std::{
    net::{IpAddr, SocketAddr},
    path::Path,
    time::Duration,
};

use anyhow::Context as _;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpStream, UdpSocket},
    time::timeout,
};

/// How long one resolver may take before the next is asked.
const RESOLVER_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest answer read over UDP (EDNS's common buffer size).
const MAX_UDP_ANSWER: usize = 4096;
/// The SERVFAIL response code, in the header's low four bits.
const SERVFAIL: u8 = 2;

/// The `nameserver` addresses of a resolv.conf, port 53; an unreadable file has none.
pub fn resolvers_in(path: &Path) -> anyhow::Result<Vec<SocketAddr>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(nameservers(&text))
}

/// The `nameserver` lines of resolv.conf `text` (an IPv6 address may carry a `%zone`, which
/// is dropped: the daemon's namespace is the host's).
fn nameservers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
        })
        .filter_map(|address| address.split('%').next()?.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// Asks `resolvers` in turn; the first answer that is not SERVFAIL, or `None`.
pub async fn forward(resolvers: &[SocketAddr], query: &[u8], over_tcp: bool) -> Option<Vec<u8>> {
    for resolver in resolvers {
        let asked = match over_tcp {
            true => timeout(RESOLVER_TIMEOUT, ask_tcp(*resolver, query)).await,
            false => timeout(RESOLVER_TIMEOUT, ask_udp(*resolver, query)).await,
        };
        if let Ok(Ok(answer)) = asked
            && answer.get(3).is_some_and(|flags| flags & 0x0f != SERVFAIL)
        {
            return Some(answer);
        }
    }
    None
}

async fn ask_udp(resolver: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let unspecified: SocketAddr = match resolver {
        SocketAddr::V4(_) => "0.0.0.0:0".parse().expect("a literal address"),
        SocketAddr::V6(_) => "[::]:0".parse().expect("a literal address"),
    };
    let socket = UdpSocket::bind(unspecified).await?;
    socket.connect(resolver).await?;
    socket.send(query).await?;
    let mut answer = vec![0; MAX_UDP_ANSWER];
    loop {
        let len = socket.recv(&mut answer).await?;
        // Only the answer to this query (the same id).
        if len >= 12 && answer[..2] == query[..2] {
            answer.truncate(len);
            return Ok(answer);
        }
    }
}

async fn ask_tcp(resolver: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(resolver).await?;
    stream.write_u16(query.len() as u16).await?;
    stream.write_all(query).await?;
    let len = stream.read_u16().await?;
    let mut answer = vec![0; usize::from(len)];
    stream.read_exact(&mut answer).await?;
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameserver_lines_are_the_resolvers() {
        let text = "# comment\nsearch x.test\nnameserver 10.0.0.53\nnameserver fe80::1%eth0\n\
                    nameserver not-an-address\noptions ndots:2\n";
        assert_eq!(
            nameservers(text),
            vec![
                "10.0.0.53:53".parse().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
    }
}
