/** The commented starter config `wicket init` writes. It doubles as a tour of the format. */
export const STARTER_CONFIG = `# wicket config, written by \`wicket init\`. Reference: README.md, "Config reference".
# Reloaded on SIGHUP; an invalid file keeps the running policy and logs why.

data_dir: ./data          # sqlite store, recordings, host key, TLS cert (relative to this file)
store: sqlite             # embedded store; postgres://... is reserved for cluster mode
listen:
  postgres: 127.0.0.1:15432
  mysql: 127.0.0.1:13306
  ssh: 127.0.0.1:2222
  web: 127.0.0.1:8080
recording:
  on_failure: refuse      # fail closed: no recording, no session

segments:
  - name: sandbox
    description: Local shell on the broker host, for trying wicket out.
  # - { name: payments-prod, description: Card data. PCI scope. }

targets:
  # A local pseudo-terminal on the broker host: ssh -p 2222 admin@sandbox@127.0.0.1
  - name: sandbox
    segment: sandbox
    protocol: shell
    command: [/bin/bash, -l]
  # - name: orders-db
  #   segment: payments-prod
  #   protocol: postgres
  #   address: 127.0.0.1:5432
  #   database: orders
  #   user: app
  #   password: env:ORDERS_PW   # env:NAME or file:PATH; users never see it
  #   tls: prefer               # disable | prefer | require | verify

roles:
  - name: admin
    admin: true               # may kill sessions and lock segments
    audit: true               # sees every session
    approve: ['*']            # may approve requests for every segment
    allow:
      - segments: ['*']
  # - name: developer
  #   allow:
  #     - { segments: [sandbox] }
  #     - segments: [payments-prod]
  #       protocols: [postgres]
  #       access: read
  #       approval: required    # just-in-time: needs an approved request
  #       max_duration: 2h
  #       deny_sql: [ddl, delete_without_where]

users:
  - name: admin
    roles: [admin]
    # ssh_keys: ["ssh-ed25519 AAAA... admin@laptop"]
`;
