# frozen_string_literal: true

module MultiTenant
  VERSION = "0.1.0"
end
