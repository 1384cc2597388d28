//! Kafka framing: a 4-byte big-endian size, then that many bytes. The size is checked against
//! the limit before anything is allocated for the body.

use bytes::Bytes;
use futures_lite::{AsyncRead, AsyncReadExt};
use thiserror::Error;

/// The smallest request: api key, api version, correlation id.
pub const REQUEST_HEADER_BYTES_MIN: usize = 8;

#[derive(Debug, Error)]
pub enum FrameError {
    #[error("connection closed")]
    Closed,
    #[error("frame size {0} is negative or below the minimal request header")]
    BadSize(i32),
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one whole frame. EOF before the first size byte is a clean close.
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R, bytes_max: usize) -> Result<Bytes, FrameError> {
    let size = read_size(reader, bytes_max).await?;
    read_body(reader, size).await
}

/// Reads and checks a frame's size prefix, so the caller can reserve the body's bytes first.
pub async fn read_size<R: AsyncRead + Unpin>(reader: &mut R, bytes_max: usize) -> Result<usize, FrameError> {
    let mut size_buf = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = reader.read(&mut size_buf[got..]).await?;
        if n == 0 {
            return Err(if got == 0 {
                FrameError::Closed
            } else {
                FrameError::Io(std::io::ErrorKind::UnexpectedEof.into())
            });
        }
        got += n;
    }
    let size = i32::from_be_bytes(size_buf);
    let size_usize = usize::try_from(size).map_err(|_| FrameError::BadSize(size))?;
    if size_usize < REQUEST_HEADER_BYTES_MIN {
        return Err(FrameError::BadSize(size));
    }
    if size_usize > bytes_max {
        return Err(FrameError::TooLarge { size: size_usize, limit: bytes_max });
    }
    Ok(size_usize)
}

/// Reads a body whose size [`read_size`] checked.
pub async fn read_body<R: AsyncRead + Unpin>(reader: &mut R, size: usize) -> Result<Bytes, FrameError> {
    let mut body = vec![0u8; size];
    reader.read_exact(&mut body).await?;
    Ok(Bytes::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8], max: usize) -> Result<Bytes, FrameError> {
        futures_lite::future::block_on(read_frame(&mut &bytes[..], max))
    }

    #[test]
    fn frames_are_checked_before_allocation() {
        assert!(matches!(read(&[], 100), Err(FrameError::Closed)));
        assert!(matches!(read(&[0, 0], 100), Err(FrameError::Io(_))));
        assert!(matches!(read(&(-1i32).to_be_bytes(), 100), Err(FrameError::BadSize(-1))));
        assert!(matches!(read(&3i32.to_be_bytes(), 100), Err(FrameError::BadSize(3))));
        assert!(matches!(read(&i32::MAX.to_be_bytes(), 100), Err(FrameError::TooLarge { .. })));
        let mut ok = 8i32.to_be_bytes().to_vec();
        ok.extend_from_slice(&[1; 8]);
        assert_eq!(read(&ok, 100).expect("frame").len(), 8);
        let truncated = [0, 0, 0, 9, 1, 2, 3];
        assert!(matches!(read(&truncated, 100), Err(FrameError::Io(_))));
    }
}
