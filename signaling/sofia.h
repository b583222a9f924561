#pragma once
// The one place Sofia-SIP headers are included. The magic types must be defined before the
// first Sofia include; they are global-namespace structs owned by signaling_plane.cc.

#define SU_ROOT_MAGIC_T struct sbc_sip_plane
#define SU_WAKEUP_ARG_T struct sbc_sip_plane
#define NTA_AGENT_MAGIC_T struct sbc_sip_realm
#define NTA_LEG_MAGIC_T struct sbc_sip_realm
#define NTA_INCOMING_MAGIC_T struct sbc_sip_realm

#include <sofia-sip/msg_addr.h>
#include <sofia-sip/nta.h>
#include <sofia-sip/nta_stateless.h>
#include <sofia-sip/nta_tport.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_protos.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su.h>
#include <sofia-sip/su_wait.h>
#include <sofia-sip/tport.h>
