//! Socket writes the glommio stream does not offer: a vectored "write all" that never blocks the
//! executor.

use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;

use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;

/// Writes every byte of `slices`, in order, to `stream`.
///
/// Each step is one `sendmsg(MSG_DONTWAIT)` of all remaining slices. When the socket is full, the
/// next slice's bytes go through glommio's `write`, which parks the task until the socket is
/// writable (and sends at least one byte), so no timer or blocking call is involved.
pub(crate) async fn write_all_vectored(
    stream: &mut TcpStream,
    mut slices: &mut [IoSlice<'_>],
) -> io::Result<()> {
    let fd = stream.as_raw_fd();
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        // SAFETY: msghdr is plain data; zeroed is a valid "no address, no control" header.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        // IoSlice is ABI-compatible with iovec on Unix (documented by std).
        msg.msg_iov = slices.as_mut_ptr().cast();
        msg.msg_iovlen = slices.len().min(1024) as _;
        // SAFETY: msg points at live iovecs that stay borrowed for the call.
        let sent = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        if sent >= 0 {
            IoSlice::advance_slices(&mut slices, sent as usize);
            continue;
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::Interrupted => {}
            io::ErrorKind::WouldBlock => {
                let first: &[u8] = &slices[0];
                let n = stream.write(first).await?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "socket accepted no bytes",
                    ));
                }
                IoSlice::advance_slices(&mut slices, n);
            }
            _ => return Err(err),
        }
    }
    Ok(())
}
