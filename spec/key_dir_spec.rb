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
