-- One role and one database per node (ops/compose.yaml); run once, when the volume is empty.
-- Local-trial passwords: change them together with ops/compose/<node>/exnode.toml.
CREATE ROLE ministry LOGIN PASSWORD 'exnode-ministry';
CREATE DATABASE ministry OWNER ministry;
CREATE ROLE region LOGIN PASSWORD 'exnode-region';
CREATE DATABASE region OWNER region;
CREATE ROLE department LOGIN PASSWORD 'exnode-department';
CREATE DATABASE department OWNER department;
