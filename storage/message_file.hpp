// How a new message file comes to be: written unnamed (O_TMPFILE) in the account's tmp/ and
// linked into new/ or cur/ under its final name once it is durable, or, where the file system
// or /proc can't do that, written as a named tmp/ file and renamed (the classic Maildir way).
// The unnamed way makes one directory change per message instead of three (create in tmp/,
// then a rename that locks tmp/ and new/), and a crash leaves no tmp/ leftovers: the kernel
// frees an unlinked inode. Blocking; io and writer threads only.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

namespace pillarbox::storage {

// An open, still unnamed message file. Closing it without a link discards it.
class OpenFile {
public:
    explicit OpenFile(int fd) : fd_(fd) {}
    ~OpenFile();
    OpenFile(const OpenFile&) = delete;
    OpenFile& operator=(const OpenFile&) = delete;
    int fd() const { return fd_; }

private:
    int fd_;
};

// A message already written (and made durable), not yet in a mailbox: an unnamed file (file)
// or a named one in the account's tmp/ directory (tmp_path). See above.
struct NewMessage {
    std::string tmp_path;
    std::shared_ptr<OpenFile> file;
    std::string base;  // Maildir base name chosen when the tmp file was created
    std::uint64_t size = 0;
    std::uint64_t rfc822_size = 0;
    std::int64_t internal_date = 0;
    std::uint32_t flags = 0;
    std::string parsed;  // the parse cache, when the store was given a parser
};

// Bytes of a message that is already on disk, for a copy elsewhere (the SMTP session's retry
// and hold copies of a partly delivered message, storage/queue's Queue::copy_in): an open
// descriptor, which stays valid whatever happens to the file's names, or else a path opened
// when read. Owns and closes the descriptor.
struct MessageCopy {
    MessageCopy() = default;
    MessageCopy(const MessageCopy&) = delete;
    MessageCopy& operator=(const MessageCopy&) = delete;
    ~MessageCopy();
    int fd = -1;
    std::string path;                     // when fd < 0
    std::uint64_t offset = 0;             // bytes to skip: the header lines a store copy starts with
    std::uint64_t length = UINT64_MAX;    // bytes to copy; UINT64_MAX: to the end of the file
};

// Creates the file for m (m.base set) below tmp_dir for writing (an unnamed one is also readable,
// for the parse cache): an unnamed file when possible
// (m.file then owns the descriptor, and the return value is the same descriptor), else
// tmp_dir/base (m.tmp_path set; the caller owns and closes the returned descriptor). -1 with
// errno on failure.
int create_message_file(const std::filesystem::path& tmp_dir, NewMessage& m);

// Gives the written file its name: links the unnamed file, or renames the tmp/ file. Throws
// std::system_error.
void place_message_file(NewMessage& m, const std::filesystem::path& target);

// Sets the file's mtime (the IMAP internal date). Throws std::system_error.
void set_message_mtime(const NewMessage& m, std::int64_t secs);

// Drops a file that will not be placed (the unnamed one simply closes when the last copy of m
// goes; a named one is unlinked now).
void discard_message_file(NewMessage& m);

// For logs: the tmp/ path, or "unnamed file for BASE".
std::string message_file_label(const NewMessage& m);

// Tests: false forces the named way; true lets the next creation try unnamed files again.
void use_unnamed_message_files(bool on);

}  // namespace pillarbox::storage
