# frozen_string_literal: true

require "rexml/document"
require "rubygems"
require "yaml"

# The apps in ood/apps as the Open OnDemand app catalogue ("Appverse", openondemand.connectci.org) takes
# them: a manifest, a README, an icon each, and appverse.yml at the root listing exactly these apps.
# Files only: no cluster, no dashboard.
RSpec.describe "the apps, ready for the Open OnDemand app catalogue" do
  apps_dir = File.join(ROOT, "ood/apps")
  app_dirs = Dir.children(apps_dir).select { |d| File.directory?(File.join(apps_dir, d)) }.sort
  # The catalogue's vocabularies (its contributor guide): one app type per app, implementation tags from this list.
  app_types = %w[batch-connect-basic batch-connect-VNC dashboards companion_app widgets].freeze
  implementation_tags = ["Apptainer", "Batch Connect", "Classroom", "Containerized", "Docker", "GPU-enabled", "Modules",
                         "Passenger", "Source Install"].freeze
  sections = ["What the admin provides", "The form", "What members get", "Tested with"].freeze
  # Plain shapes only: what a hand-drawn icon needs, nothing that runs, loads or embeds.
  svg_elements = %w[svg title desc g rect circle ellipse line polyline polygon path].freeze

  def manifest(dir) = YAML.safe_load(File.read(File.join(ROOT, "ood/apps", dir, "manifest.yml")))
  def appverse = YAML.safe_load(File.read(File.join(ROOT, "appverse.yml")))
  def url_or_blank?(value) = value == "" || value.to_s.match?(%r{\Ahttps?://[^\s/]+\.[^\s/]+(/\S*)?\z})

  it "finds the shipped apps in ood/apps" do
    expect(app_dirs).to include("multitenant-llm", "multitenant-database", "multitenant-dashboard", "multitenant-content",
                                "multitenant-jupyter", "multitenant-delivery_default", "multitenant-delivery_debug",
                                "multitenant-delivery_content")
  end

  app_dirs.each do |dir|
    describe dir do
      it "has a manifest.yml with a name, category Multitenant, a subcategory, role batch_connect and a description" do
        m = manifest(dir)
        expect(m).to include("category" => "Multitenant", "role" => "batch_connect")
        %w[name subcategory description].each { |k| expect(m[k]).to be_a(String).and(satisfy { |v| !v.strip.empty? }), "#{k}: #{m[k].inspect}" }
      end

      it "has a README.md titled with its manifest name, a paragraph, then the four sections in order, none empty" do
        text = File.read(File.join(apps_dir, dir, "README.md"))
        expect(text.lines.first.chomp).to eq("# #{manifest(dir)["name"]}")
        expect(text.split(/^## /).first.lines.drop(1).join.strip).not_to be_empty
        found = text.scan(/^## (.+?)\s*$/).flatten
        expect(found & sections).to eq(sections)
        sections.each do |s|
          body = text[/^## #{Regexp.escape(s)}\s*\n(.*?)(?=^## |\z)/m, 1]
          expect(body.to_s.strip).not_to be_empty, "section #{s} is empty"
        end
      end

      it "has a small icon.svg that parses as XML: an svg root with a 0 0 64 64 viewBox, plain shapes, nothing that runs or loads" do
        path = File.join(apps_dir, dir, "icon.svg")
        text = File.read(path)
        expect(text.bytesize).to be < 4096
        doc = REXML::Document.new(text)
        expect(doc.doctype).to be_nil # no DTD, so no entities
        expect(doc.root&.name).to eq("svg")
        expect(doc.root.namespace).to eq("http://www.w3.org/2000/svg")
        expect(doc.root.attributes["viewBox"]).to eq("0 0 64 64")
        elements = REXML::XPath.match(doc, "//*")
        names = elements.map { |e| e.name.downcase }
        expect(names & %w[script foreignobject]).to eq([])
        expect(names - svg_elements).to eq([])
        attributes = elements.flat_map { |e| e.attributes.each_attribute.to_a }
        expect(attributes.map(&:name).grep(/\Aon/i)).to eq([])
        # href and xlink:href (REXML's name is the local part) may only point inside the file.
        expect(attributes.select { |a| a.name.casecmp?("href") }.map(&:value).grep_v(/\A#/)).to eq([])
        expect(text.scan(/url\(\s*['"]?([^)'"\s]*)/i).flatten.grep_v(/\A#/)).to eq([])
        expect(text).not_to match(/@import|<\?xml-stylesheet|<!ENTITY/i)
      end
    end
  end

  describe "appverse.yml" do
    it "parses, with the fields the catalogue requires of the repository" do
      y = appverse
      expect(y.dig("appverse", "min_version")).to eq("1.0")
      %w[title description].each { |k| expect(y[k].to_s.strip).not_to be_empty, k }
      expect(y.dig("maintainer", "name").to_s.strip).not_to be_empty
      # No public URL yet: blank for the publisher to fill (a comment says so), else a real http(s) URL.
      [y["website"], y["docs"], y.dig("maintainer", "support_url")].each { |v| expect(url_or_blank?(v)).to be(true), v.inspect }
      expect(y["tags"]).to be_an(Array).and(all(be_a(String)))
      expect(y["shared_implementation_tags"].to_a - implementation_tags).to eq([])
    end

    it "names only paths the repository has as shared paths" do
      paths = appverse["shared_paths"]
      expect(paths).to be_an(Array).and(include("lib/", "ext/"))
      expect(paths.reject { |p| File.exist?(File.join(ROOT, p)) }).to eq([])
      # What the gem's code uses beside the apps (admin install points the card cluster's scancel at ood/bin).
      expect(paths).to include(*Dir.children(File.join(ROOT, "ood")).reject { |d| d == "apps" }.map { |d| "ood/#{d}/" })
    end

    it "lists every app directory exactly once, and nothing else" do
      listed = appverse["apps"].map { |a| a["path"] }
      expect(listed.tally.select { |_, n| n > 1 }.keys).to eq([])
      expect(listed.sort).to eq(app_dirs.map { |d| "ood/apps/#{d}" })
    end

    it "gives each app its manifest's name, a description, the software it launches, an app type and implementation tags from the vocabularies" do
      appverse["apps"].each do |a|
        dir = a["path"].to_s.delete_prefix("ood/apps/")
        expect(a["name"]).to eq(manifest(dir)["name"]), a["path"]
        %w[description software].each { |k| expect(a[k].to_s.strip).not_to be_empty, "#{a["path"]}: #{k}" }
        expect(app_types).to include(a["app_type"])
        expect(a.fetch("implementation_tags", []) - implementation_tags).to eq([]), a["path"]
        expect(a.fetch("tags", [])).to all(be_a(String))
      end
    end
  end

  it "has an MIT LICENSE" do
    text = File.read(File.join(ROOT, "LICENSE"))
    expect(text).to start_with("MIT License").and include("Copyright (c) 2026 multitenant authors", "THE SOFTWARE IS PROVIDED \"AS IS\"")
  end

  describe "the gem's file list (rake gem builds from multitenant.gemspec)" do
    gemspec = Gem::Specification.load(File.join(ROOT, "multitenant.gemspec"))

    it "holds the LICENSE" do
      expect(gemspec.files).to include("LICENSE")
    end

    app_dirs.each do |dir|
      it "holds #{dir}'s icon and README" do
        expect(gemspec.files).to include("ood/apps/#{dir}/icon.svg", "ood/apps/#{dir}/README.md")
      end
    end
  end
end
