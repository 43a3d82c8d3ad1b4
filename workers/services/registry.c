/*
 * registry.c - the table of built-in services.  One line per service.
 */
#include "services.h"

const br_service_spec *const br_builtin_services[] = {
    &br_hello_service,  &br_sleep_service,   &br_echo_service,   &br_hash_service,
    &br_signup_service, &br_email_service,   &br_report_service, &br_dashboard_service,
    &br_fetch_service,  &br_counter_service, &br_chat_service,   &br_clock_service,
    &br_upload_service, &br_relay_service,
};

const size_t br_builtin_count = BR_NELEMS(br_builtin_services);
