# frozen_string_literal: true

# RubyGems runs this on `gem install`. It writes a Makefile that builds with cargo (offline when the
# gem ships vendored crates), installs the .so where RubyGems collects it and the publisher into the
# gem's libexec/, then removes the cargo target dir and the vendored sources so the installed gem stays small.
require_relative "build"

File.write("Makefile", <<~MAKE)
  RUBY = #{RbConfig.ruby}
  TARGET = #{File.join(MultiTenantBuild::ROOT, "target")}
  sitearchdir ?= #{File.join(MultiTenantBuild::ROOT, "lib")}

  all:
  \t$(RUBY) -r#{File.expand_path("build.rb", __dir__)} -e 'MultiTenantBuild.cargo_build(ARGV[0])' $(TARGET)

  install: all
  \t$(RUBY) -r#{File.expand_path("build.rb", __dir__)} -e 'MultiTenantBuild.install(ARGV[0], lib_dir: ARGV[1], libexec_dir: ARGV[2])' $(TARGET) $(sitearchdir) #{File.join(MultiTenantBuild::ROOT, "libexec")}
  \trm -rf $(TARGET) #{File.join(MultiTenantBuild::ROOT, "vendor")}

  clean:
  \trm -rf $(TARGET)
MAKE
