# frozen_string_literal: true

require "etc"

module MultiTenant
  # The directory of <group>.key files and @site.key. Loading checks owner, group and mode.
  class KeyDir
    DEFAULT = "/etc/multitenant/keys"

    def self.new(path = DEFAULT, owner: "root")
      MultiTenant.native!
      _new(path.to_s, owner.is_a?(Integer) ? owner : Etc.getpwnam(owner.to_s).uid)
    rescue ArgumentError => e
      raise InputError, "key owner #{owner.inspect}: #{e.message}"
    end

    # Writes a new key file (group: nil for the site-wide key); rotate: true adds a key to an existing file.
    def generate(group: nil, site: false, rotate: false)
      raise InputError, "give group: or site: true" if group.nil? == !site

      _generate(group, rotate)
    end

    # Keeps only the newest key of an existing key file (group: nil for the site-wide key), written as
    # generate writes. Shares sealed with a dropped key stop opening: use it after rotate, once they have
    # ended. Returns { path:, kept: (the Key), dropped: (how many) }.
    def drop_old(group: nil, site: false)
      raise InputError, "give group: or site: true" if group.nil? == !site

      path, kept, dropped = _drop_old(group)
      { path: path, kept: kept, dropped: dropped }
    end

    # The key new shares for the group are sealed with. allow_site: true falls back to the site-wide
    # key (readable by every user) when the group has no key file.
    def sealing_key(group, allow_site: false)
      _sealing_key(group, allow_site)
    end

    def file_path(group: nil)
      _file_path(group)
    end
  end
end
