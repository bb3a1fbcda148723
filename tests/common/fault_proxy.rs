//! A loopback HTTP/1.1 proxy in front of a real server, passing every request
//! through but the first that `trips` picks, so that a fault lands at a known
//! point of a publish rather than wherever a timer happens to fall. Responses
//! pass through as the server sends them.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

pub enum Fault {
    /// Runs the closure (stopping the server, say), then drops the
    /// connection with the request unanswered.
    Drop(Box<dyn FnOnce() + Send>),
    /// Answers with this status and JSON body instead of the server.
    Answer(u16, &'static str),
    /// Forwards the request and, once the server begins its answer, runs the
    /// closure and drops the connection: the server acted, the client never
    /// hears that it did.
    Unanswered(Box<dyn FnOnce() + Send>),
}

type Trips = dyn Fn(&str, &str) -> bool + Send + Sync;

pub struct FaultProxy {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    fault: Arc<Mutex<Option<Fault>>>,
}

impl FaultProxy {
    /// Forwards to `upstream` (`HOST:PORT`); `trips(method, target)` picks the
    /// request that faults. The listener lives as long as the test process.
    pub fn start(
        upstream: &str,
        trips: impl Fn(&str, &str) -> bool + Send + Sync + 'static,
        fault: Fault,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let fault = Arc::new(Mutex::new(Some(fault)));
        let trips: Arc<Trips> = Arc::new(trips);
        let upstream = upstream.to_owned();
        let pending = Arc::clone(&fault);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (upstream, trips, pending) =
                    (upstream.clone(), Arc::clone(&trips), Arc::clone(&pending));
                // An error here is the connection's end, as the client sees it.
                std::thread::spawn(move || serve(client, &upstream, &*trips, &pending));
            }
        });
        FaultProxy { addr, fault }
    }

    /// Whether the fault has happened, so that a test knows it met it.
    pub fn tripped(&self) -> bool {
        self.fault.lock().unwrap().is_none()
    }
}

fn serve(
    client: TcpStream,
    upstream: &str,
    trips: &Trips,
    fault: &Mutex<Option<Fault>>,
) -> io::Result<()> {
    let mut requests = BufReader::new(client.try_clone()?);
    let mut server: Option<TcpStream> = None;
    loop {
        let head = read_head(&mut requests)?;
        if head.is_empty() {
            if let Some(server) = &server {
                server.shutdown(Shutdown::Write)?;
            }
            return Ok(());
        }
        let mut words = head.split_whitespace();
        let (method, target) = (
            words.next().unwrap_or_default(),
            words.next().unwrap_or_default(),
        );
        let tripped = if trips(method, target) {
            fault.lock().unwrap().take()
        } else {
            None
        };
        if let Some(tripped) = tripped {
            match tripped {
                Fault::Drop(before) => before(),
                Fault::Unanswered(after) => {
                    // A connection of its own, whose answer nothing relays.
                    let mut unrelayed = TcpStream::connect(upstream)?;
                    unrelayed.write_all(head.as_bytes())?;
                    copy_body(&head, &mut requests, &mut unrelayed)?;
                    unrelayed.read_exact(&mut [0])?;
                    after();
                }
                Fault::Answer(status, body) => {
                    copy_body(&head, &mut requests, &mut io::sink())?;
                    write!(
                        &client,
                        "HTTP/1.1 {status} Fault\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )?;
                }
            }
            if let Some(server) = &server {
                let _ = server.shutdown(Shutdown::Both);
            }
            return client.shutdown(Shutdown::Both);
        }
        let server = match &mut server {
            Some(server) => server,
            None => {
                let connected = TcpStream::connect(upstream)?;
                let (mut replies, mut to_client) = (connected.try_clone()?, client.try_clone()?);
                std::thread::spawn(move || {
                    let _ = io::copy(&mut replies, &mut to_client);
                    let _ = to_client.shutdown(Shutdown::Write);
                });
                server.insert(connected)
            }
        };
        server.write_all(head.as_bytes())?;
        copy_body(&head, &mut requests, server)?;
    }
}

/// A request's line and headers, or nothing at the end of the connection.
fn read_head(requests: &mut BufReader<TcpStream>) -> io::Result<String> {
    let mut head = String::new();
    while requests.read_line(&mut head)? > 0 && !head.ends_with("\r\n\r\n") {}
    Ok(head)
}

fn copy_body(
    head: &str,
    requests: &mut BufReader<TcpStream>,
    to: &mut impl Write,
) -> io::Result<()> {
    let header = |name: &str| {
        head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    };
    // decant's client sends every body with its length; a chunked one would
    // be forwarded wrong, so it fails loudly instead.
    assert!(
        header("transfer-encoding").is_none(),
        "the fault proxy forwards sized bodies only: {head}"
    );
    let length: u64 = header("content-length")
        .map_or(Ok(0), |v| v.parse())
        .map_err(io::Error::other)?;
    io::copy(&mut requests.by_ref().take(length), to)?;
    Ok(())
}
