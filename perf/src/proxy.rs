//! `xnet-proxy`: a userland TCP proxy shaped like Docker's `docker-proxy`, the baseline a
//! published port is compared with when it is served in user space. It accepts on one
//! address, opens one connection to the target per client, and copies both directions until
//! each side closes. docker-proxy does that with Go's `io.Copy` between two TCP connections,
//! which Go implements with splice(2) through a pipe; so does this.

use std::{
    io,
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd},
    thread,
};

use anyhow::Context as _;
use clap::Args;

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Address and port to accept connections on.
    #[arg(long)]
    pub listen: SocketAddr,
    /// Where each client's connection goes.
    #[arg(long)]
    pub to: SocketAddr,
}

/// Bytes one splice call moves at most, and the pipe size asked for: Go's splice does the same.
const SPLICE_MAX: usize = 1 << 20;

pub fn main(args: &ProxyArgs) -> anyhow::Result<()> {
    let listener =
        TcpListener::bind(args.listen).with_context(|| format!("binding {}", args.listen))?;
    println!("{}", crate::READY);
    for client in listener.incoming() {
        let client = client.context("accepting")?;
        let to = args.to;
        thread::spawn(move || {
            if let Err(error) = serve(client, to) {
                eprintln!("xnet-proxy: {error:#}");
            }
        });
    }
    Ok(())
}

/// Connects to `to` and copies both ways until both directions have ended.
fn serve(client: TcpStream, to: SocketAddr) -> anyhow::Result<()> {
    let upstream = TcpStream::connect(to).with_context(|| format!("connecting to {to}"))?;
    // Go sets TCP_NODELAY on every TCP connection, docker-proxy's included: without it a
    // small message waits for the previous one's (delayed) acknowledgement.
    for stream in [&client, &upstream] {
        stream.set_nodelay(true).context("setting TCP_NODELAY")?;
    }
    let (client_rx, upstream_tx) = (client.try_clone()?, upstream.try_clone()?);
    let uploads = thread::spawn(move || copy(&client_rx, &upstream_tx));
    let downloads = copy(&upstream, &client);
    if downloads.is_err() {
        // Unblocks the other direction, which would otherwise wait for the client forever.
        let _ = client.shutdown(Shutdown::Both);
        let _ = upstream.shutdown(Shutdown::Both);
    }
    let uploads = uploads
        .join()
        .map_err(|_| anyhow::anyhow!("the copying thread panicked"))?;
    downloads.context("upstream to client")?;
    uploads.context("client to upstream")
}

/// Moves everything `from` sends into `to` through a pipe with splice(2) (the bytes never
/// enter user space), then half-closes `to` so its peer sees the end as well.
fn copy(from: &TcpStream, to: &TcpStream) -> io::Result<()> {
    let (pipe_rx, pipe_tx) = pipe()?;
    loop {
        let got = splice(from.as_raw_fd(), pipe_tx.as_raw_fd(), SPLICE_MAX)?;
        if got == 0 {
            break;
        }
        let mut left = got;
        while left > 0 {
            left -= splice(pipe_rx.as_raw_fd(), to.as_raw_fd(), left)?;
        }
    }
    to.shutdown(Shutdown::Write)
}

/// A pipe (read end, write end), enlarged to [`SPLICE_MAX`] where the system allows.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both are open descriptors that nothing else owns.
    let (rx, tx) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // A smaller pipe works too, with more calls: the result is ignored, as Go ignores it.
    // SAFETY: plain fcntl on a descriptor we own.
    unsafe {
        libc::fcntl(
            tx.as_raw_fd(),
            libc::F_SETPIPE_SZ,
            SPLICE_MAX as libc::c_int,
        )
    };
    Ok((rx, tx))
}

/// One splice(2) of up to `len` bytes from `from` to `to` (one of them a pipe); 0 at the end
/// of the input.
fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    loop {
        // SAFETY: both descriptors are open for the call; null offsets = the files' own.
        let n = unsafe {
            libc::splice(
                from,
                std::ptr::null_mut(),
                to,
                std::ptr::null_mut(),
                len,
                // Not SPLICE_F_MORE: into a socket that corks (MSG_MORE), and a small message
                // would wait 200 ms for more. Go does not pass it either.
                libc::SPLICE_F_MOVE,
            )
        };
        match n {
            0.. => return Ok(n as usize),
            _ => {
                let error = io::Error::last_os_error();
                if error.kind() != io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};

    use super::*;

    #[test]
    fn copies_both_ways_and_passes_the_end_on() {
        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = echo.local_addr().unwrap();
        thread::spawn(move || {
            let (mut stream, _) = echo.accept().unwrap();
            let mut got = Vec::new();
            stream.read_to_end(&mut got).unwrap();
            stream.write_all(&got).unwrap();
        });
        let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
        let entry = proxy.local_addr().unwrap();
        thread::spawn(move || serve(proxy.accept().unwrap().0, target));

        let mut client = TcpStream::connect(entry).unwrap();
        let sent: Vec<u8> = (0..3_000_000u32).map(|i| i as u8).collect();
        let writer = {
            let (mut client, sent) = (client.try_clone().unwrap(), sent.clone());
            thread::spawn(move || {
                client.write_all(&sent).unwrap();
                client.shutdown(Shutdown::Write).unwrap();
            })
        };
        let mut back = Vec::new();
        client.read_to_end(&mut back).unwrap();
        writer.join().unwrap();
        assert_eq!(back, sent);
    }
}
