# frozen_string_literal: true

require_relative "lib/multitenant/version"

Gem::Specification.new do |spec|
  spec.name = "multitenant"
  spec.version = MultiTenant::VERSION
  spec.summary = "Share services running as Slurm jobs with chosen users of Open OnDemand"
  spec.description = "Seals a batch job's connection details into its own Slurm job name, for a POSIX group; " \
                     "each user's OOD dashboard discovers, verifies and delivers the jobs shared with them."
  spec.authors = ["multitenant authors"]
  spec.license = "MIT"
  spec.required_ruby_version = ">= 3.0"
  spec.extensions = ["ext/multitenant/extconf.rb"]

  glob = lambda do |*patterns|
    patterns.flat_map { |p| Dir.glob(p, File::FNM_DOTMATCH, base: __dir__) }.reject { |f| File.directory?(File.join(__dir__, f)) }
  end
  spec.files = glob.call("lib/**/*.rb", "ext/**/*.{rs,rb,toml}", "docs/**/*", "ood/**/*", "vendor/**/*", ".cargo/config.toml") +
               %w[Cargo.toml Cargo.lock LICENSE README.md Rakefile admin.rake multitenant.gemspec rustfmt.toml]
end
