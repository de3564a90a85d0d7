-- iotstream 0.2.0 -> 0.3.0.
--
-- After this script the catalog is what CREATE EXTENSION iotstream VERSION
-- '0.3.0' makes (test/integration/01_upgrade.sh walks 0.1.0 -> 0.2.0 ->
-- 0.3.0 and compares).  Each change below names the issue it serves.
\echo Use "ALTER EXTENSION iotstream UPDATE TO '0.3.0'" to load this file. \quit
