"""Support shared by the test suite and the bench scripts: processes seen through /proc (procs), servers on
local ports (servers), a fake OpenAI-compatible endpoint (fake_openai) and headless Chromium (browser)."""
