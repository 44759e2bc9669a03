//! Reading the files a configuration names, boundedly: a configuration file,
//! a secret file, a TLS file. A path may name a device (`/dev/zero` never
//! ends), a pipe (reading blocks until a writer comes) or a huge file; none
//! of them may hang the program or fill its memory.

use std::io::{self, Read};
use std::path::Path;

/// Longest configuration file read (the client's `config.yaml`, the
/// service's file), in bytes.
pub const MAX_CONFIG_FILE: u64 = 1 << 20;

/// Reads a regular file of at most `max` bytes. Anything else (a directory, a
/// device, a pipe, a longer file) is an error of kind `InvalidInput` that says
/// which, and the file is not read.
pub fn read_bounded(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let too_long = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("larger than {max} bytes"),
        )
    };
    if meta.len() > max {
        return Err(too_long());
    }
    // The file may grow between the check and the read.
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(too_long());
    }
    Ok(bytes)
}

/// [`read_bounded`] for a text file: invalid UTF-8 is an `InvalidData` error.
pub fn read_bounded_text(path: &Path, max: u64) -> io::Result<String> {
    String::from_utf8(read_bounded(path, max)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_within_the_bound_are_read() {
        let dir = std::env::temp_dir().join(format!("pd-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let small = dir.join("small.yaml");
        std::fs::write(&small, "proxy: {}\n").unwrap();
        assert_eq!(read_bounded_text(&small, 64).unwrap(), "proxy: {}\n");
        let e = read_bounded(&small, 4).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("larger than 4 bytes"), "{e}");
        for not_a_file in [Path::new("/dev/zero"), dir.as_path()] {
            let e = read_bounded(not_a_file, 1 << 20).unwrap_err();
            assert!(e.to_string().contains("not a regular file"), "{e}");
        }
        std::fs::write(&small, [0xff, 0xfe]).unwrap();
        assert_eq!(
            read_bounded_text(&small, 64).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
