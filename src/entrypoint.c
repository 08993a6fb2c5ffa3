// The R entry point: install extendr's panic hook, then register the
// routines of the Rust module `streamlyr` (see src/rust/src/r/mod.rs).
void R_init_streamlyr_extendr(void *dll);
void register_extendr_panic_hook(void);

void R_init_streamlyr(void *dll) {
    register_extendr_panic_hook();
    R_init_streamlyr_extendr(dll);
}
