# frozen_string_literal: true

module MultiTenant
  # Every error the gem raises. The native extension looks these classes up by name.
  class Error < StandardError; end

  # A name or its sealed content is not well formed.
  class FormatError < Error; end
  # The payload announces a format version this gem cannot read.
  class VersionError < FormatError; end
  # The name is in the legacy (insecure) format and legacy decoding is off.
  class LegacyError < FormatError; end
  # No readable key has the id the payload names.
  class UnknownKeyError < Error; end
  # The MAC does not verify: wrong key, or the name was altered or moved.
  class SealError < Error; end
  # A value breaks a rule of the format.
  class InputError < Error; end
  # The sealed name would not fit Slurm's 1024-character job-name limit.
  class TooLargeError < InputError; end
  # A key file or the key directory is missing, unsafe or unreadable.
  class KeyFileError < Error; end
  # A scheduler command failed, timed out or wrote to stderr.
  class SchedulerError < Error; end
  # The native library is not loaded (see MultiTenant.load_error).
  class NativeError < Error; end
end
