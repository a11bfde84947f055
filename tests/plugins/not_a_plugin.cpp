// A shared library without a dtask descriptor: loading it must fail clearly.
extern "C" int not_a_plugin_symbol(void) { return 42; }
