# frozen_string_literal: true

RSpec.describe MultiTenant::KeyDir do
  before { require_root! }

  around do |example|
    shared_tmpdir do |dir|
      @dir = File.join(dir, "keys")
      example.run
    end
  end

  let(:keys) { described_class.new(@dir) }

  it "generates a root:<group> 0440 key file and never overwrites it" do
    path = keys.generate(group: "mtclass")
    stat = File.stat(path)
    expect([stat.uid, Etc.getgrgid(stat.gid).name, stat.mode & 0o7777]).to eq([0, "mtclass", 0o440])
    expect { keys.generate(group: "mtclass") }.to raise_error(MultiTenant::KeyFileError, /already exists.*--rotate/)
    first = keys.sealing_key("mtclass")
    keys.generate(group: "mtclass", rotate: true)
    expect(keys.opening_keys("mtclass").size).to eq(2)
    expect(keys.opening_keys("mtclass").last).to eq(first)
    expect(keys.sealing_key("mtclass")).not_to eq(first)
  end

  it "drops the old keys after a rotation, keeping the newest, as generate writes the file" do
    path = keys.generate(group: "mtclass")
    old = keys.sealing_key("mtclass")
    expect { keys.drop_old(group: "mtclass") }.to raise_error(MultiTenant::InputError, "nothing to drop: #{path} holds one key")
    keys.generate(group: "mtclass", rotate: true)
    newest = keys.sealing_key("mtclass")
    dropped = keys.drop_old(group: "mtclass")
    expect(dropped).to eq(path: path, kept: newest, dropped: 1)
    expect(keys.opening_keys("mtclass")).to eq([newest])
    expect(keys.opening_keys("mtclass")).not_to include(old)
    stat = File.stat(path)
    expect([stat.uid, Etc.getgrgid(stat.gid).name, stat.mode & 0o7777]).to eq([0, "mtclass", 0o440])
    expect(File.read(path)).to start_with("# multitenant group key for \"mtclass\"\n")
    expect(Dir.children(@dir)).to eq(["mtclass.key"])
    expect { keys.drop_old(group: "root") }
      .to raise_error(MultiTenant::KeyFileError, "#{@dir}/root.key: does not exist, so there are no old keys to drop (create it with `mtshare keygen --group root`)")
    expect { keys.drop_old(group: "nosuchgroup-xyz") }.to raise_error(MultiTenant::InputError, /no such group/)
    expect { keys.drop_old }.to raise_error(MultiTenant::InputError, /group: or site: true/)
    keys.generate(site: true)
    keys.generate(site: true, rotate: true)
    expect(keys.drop_old(site: true)).to include(dropped: 1, path: File.join(@dir, "@site.key"))
    expect(File.stat(File.join(@dir, "@site.key")).mode & 0o7777).to eq(0o444)
  end

  it "drops old keys through Admin#keygen(drop_old: true) and admin.rake keygen DROP_OLD=1" do
    require "multitenant/admin"
    path = keys.generate(group: "mtclass")
    admin = MultiTenant::Admin.new(ood_etc: File.join(File.dirname(@dir), "ood"), env: { "MULTITENANT_KEY_DIR" => @dir })
    admin.keygen(group: "mtclass", rotate: true)
    newest = keys.sealing_key("mtclass")
    expect(admin.keygen(group: "mtclass", drop_old: true))
      .to eq(["kept key #{newest.id} in #{path}; dropped 1 older key(s): shares sealed with them no longer open"])
    expect { admin.keygen(group: "mtclass", rotate: true, drop_old: true) }.to raise_error(MultiTenant::InputError, /two steps/)
    expect(keys.opening_keys("mtclass")).to eq([newest])

    rake = lambda do |vars|
      env = { "OOD_ETC" => File.join(File.dirname(@dir), "ood"), "MULTITENANT_KEY_DIR" => @dir, "GROUP" => "mtclass" }.merge(vars)
      out, err, status = Open3.capture3(env, "rake", "-f", File.join(ROOT, "admin.rake"), "keygen")
      [out, err, status.exitstatus]
    end
    expect(rake.({ "DROP_OLD" => "1" })).to eq(["", "multitenant: nothing to drop: #{path} holds one key\n", 1])
    expect(rake.({ "ROTATE" => "1" })[2]).to eq(0)
    newest = keys.sealing_key("mtclass")
    expect(rake.({ "DROP_OLD" => "1" }))
      .to eq(["kept key #{newest.id} in #{path}; dropped 1 older key(s): shares sealed with them no longer open\n", "", 0])
    expect(keys.opening_keys("mtclass")).to eq([newest])
  end

  # The real mtshare, run as a real user with exactly a fake job's environment (runuser keeps no other).
  def mtshare(user, *args)
    bin = File.join(File.dirname(@dir), "mtshare")
    FileUtils.cp(MultiTenant.publisher_path, bin) unless File.exist?(bin)
    env = { "PATH" => "/usr/bin:/bin", "SLURM_JOB_ID" => "777", "SLURM_JOB_USER" => user, "SLURM_CLUSTER_NAME" => "mtcluster",
            "SLURM_JOB_NAME" => "ollama-service", "MULTITENANT_KEY_DIR" => @dir }
    out, err, status = Open3.capture3("runuser", "-u", user, "--", "env", "-i", *env.map { |k, v| "#{k}=#{v}" }, bin, *args,
                                      chdir: File.dirname(@dir))
    [out, err, status.exitstatus]
  end

  def open_name(name, owner, job_id = "777")
    MultiTenant::Envelope.open(name, keys: keys.opening_keys("mtclass"), job_id: job_id, owner: owner, cluster: "mtcluster")
  end

  it "a former member who kept a copy of the key cannot open shares sealed after a rotation, nor, once the old keys are dropped, older ones" do
    key_file = keys.generate(group: "mtclass")
    publish = lambda do |app|
      out, err, code = mtshare("mtowner", "publish", "--group", "mtclass", "--app", app, "--dry-run")
      expect([code, err]).to match([0, /dry run/])
      out.chomp
    end
    # What the member keeps when leaving: the key file's key, read while still a member (root can read it here).
    kept = File.readlines(key_file, chomp: true).grep_v(/\A\s*(#|\z)/).map { |l| MultiTenant::Key.from_line(l) }
    expect(kept.size).to eq(1)
    open_kept = ->(name) { MultiTenant::Envelope.open(name, keys: kept, job_id: "777", owner: "mtowner", cluster: "mtcluster") }
    old_share = publish.("Before")
    expect(open_kept.(old_share)["message"]["app"]).to eq("Before")

    out, err, code = mtshare("root", "keygen", "--group", "mtclass", "--rotate")
    expect([code, err]).to eq([0, ""])
    new_id = keys.sealing_key("mtclass").id
    expect(out).to eq("mtshare: wrote #{key_file} (root:mtclass, 0440): new key #{new_id} seals from now on; 1 older key(s) still open running shares\n")
    new_share = publish.("After")
    expect(MultiTenant::Envelope.parse(new_share)["key_id"]).to eq(new_id)
    # The kept copy names the wrong key: an unknown key id, not a damaged name.
    expect { open_kept.(new_share) }.to raise_error(MultiTenant::UnknownKeyError, /no key with id #{new_id} for group mtclass/)
    # Until the old key is dropped, the share sealed before the rotation still opens with the rotated file,
    # and so would a share the former member seals with the kept copy.
    expect(open_name(old_share, "mtowner")["message"]["app"]).to eq("Before")
    message = { app: "Forged", session_id: "s", method: "card", delivery: "sys/d" }
    forged = MultiTenant::Envelope.seal(message, key: kept.first, group: "mtclass", job_id: "778", owner: "mtoutsider", cluster: "mtcluster")
    expect(open_name(forged, "mtoutsider", "778")["message"]["app"]).to eq("Forged")
    out, _, code = mtshare("mtmember", "inspect", old_share, "--job-id", "777", "--owner", "mtowner", "--cluster", "mtcluster")
    expect([code, out]).to match([0, /app      Before/])

    # Only root drops keys: a member who may read the file cannot rewrite it.
    _, err, code = mtshare("mtowner", "keygen", "--group", "mtclass", "--drop-old")
    expect([code, err]).to match([4, /\Amtshare: #{key_file}: cannot write key file: Permission denied.*\n\z/])
    expect(keys.opening_keys("mtclass").size).to eq(2)
    _, err, code = mtshare("root", "keygen", "--group", "mtclass", "--rotate", "--drop-old")
    expect([code, err]).to match([2, /the argument '--rotate' cannot be used with '--drop-old'/])
    out, err, code = mtshare("root", "keygen", "--group", "mtclass", "--drop-old")
    expect([code, err, out]).to eq([0, "", "mtshare: kept key #{new_id} in #{key_file}; dropped 1 older key(s): shares sealed with them no longer open\n"])
    stat = File.stat(key_file)
    expect([stat.uid, Etc.getgrgid(stat.gid).name, stat.mode & 0o7777]).to eq([0, "mtclass", 0o440])
    expect(keys.opening_keys("mtclass").map(&:id)).to eq([new_id])

    old_id = kept.first.id
    expect { open_name(old_share, "mtowner") }.to raise_error(MultiTenant::UnknownKeyError, /no key with id #{old_id} for group mtclass/)
    expect { open_name(forged, "mtoutsider", "778") }.to raise_error(MultiTenant::UnknownKeyError)
    out, err, code = mtshare("mtmember", "inspect", old_share, "--job-id", "777", "--owner", "mtowner", "--cluster", "mtcluster")
    expect([code, out, err]).to match([4, /group    mtclass/, /\Amtshare: no key with id #{old_id} for group mtclass is readable here .*retired\)\n\z/])
    expect(open_name(new_share, "mtowner")["message"]["app"]).to eq("After")
    expect { open_kept.(new_share) }.to raise_error(MultiTenant::UnknownKeyError)
    expect { open_kept.(publish.("After the drop")) }.to raise_error(MultiTenant::UnknownKeyError)

    _, err, code = mtshare("root", "keygen", "--group", "mtclass", "--drop-old")
    expect([code, err]).to eq([3, "mtshare: nothing to drop: #{key_file} holds one key\n"])
  end

  it "says exactly what is wrong with an unsafe key file" do
    path = keys.generate(group: "mtclass")
    File.chmod(0o444, path)
    expect { keys.sealing_key("mtclass") }.to raise_error(MultiTenant::KeyFileError, "#{path}: is world-readable: chmod 0440 #{path}")
    File.chmod(0o440, path)
    File.chown(Etc.getpwnam("mtowner").uid, nil, path)
    expect { keys.sealing_key("mtclass") }
      .to raise_error(MultiTenant::KeyFileError, "#{path}: is owned by mtowner, not root: chown root:mtclass #{path}")
  end

  it "marks the site-wide key readable by all" do
    path = keys.generate(site: true)
    expect(File.basename(path)).to eq("@site.key")
    expect(File.stat(path).mode & 0o7777).to eq(0o444)
    expect { keys.sealing_key("mtclass") }.to raise_error(MultiTenant::KeyFileError, /no key for group mtclass/)
    expect(keys.sealing_key("mtclass", allow_site: true)).to eq(keys.opening_keys("mtclass").first)
    expect { keys.generate }.to raise_error(MultiTenant::InputError, /group: or site: true/)
  end
end
