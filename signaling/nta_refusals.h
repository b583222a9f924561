#pragma once
// nta refuses some requests by itself, before any callback of sbcd sees them: 413 for a
// message over NTATAG_MAXSIZE, 400 for a fatal parse error or a failed sanity check
// (missing or broken From, To, Call-ID, CSeq, Via, a CSeq that does not match the method, a
// datagram shorter than its Content-Length), 505 for another SIP version. It sends those
// responses to the request's Via (rport: its source), whoever that is. The one place sbcd
// can see such a request first is the message class nta parses with (NTATAG_MCLASS): its
// body extractor runs once the headers are parsed. A class made here runs the refusal
// screen there: for a request nta is going to refuse, the screen asks `screen` whether that
// response may go; when not, the request loses its Via, and nta, having nowhere to answer,
// drops it (nta still counts it as a bad request).

#include <functional>

#include "signaling/sofia.h"

namespace sbc::signaling {

// The status nta refuses `sip` (a request, its headers parsed) with before any callback,
// or 0. `extracted` is what the body extractor returned.
int ntaOwnRefusal(const sip_t* sip, issize_t extracted);

// Decides on a request nta will refuse with `status`: true lets nta answer, false silences
// it. Called on the thread that parses (the agent's su_root thread), at most once per
// message, with the message's own class.
using RefusalScreen = std::function<bool(msg_t* msg, const sip_t* sip, int status)>;

// A copy of Sofia's SIP message class whose parsing calls the screen of the calling thread
// (setRefusalScreen). Free it with freeRefusalScreeningClass after the agent using it is
// destroyed.
msg_mclass_t* makeRefusalScreeningClass();
void freeRefusalScreeningClass(msg_mclass_t* mclass);

// The screen for messages parsed on this thread (one signaling thread per plane); an empty
// one lets nta answer everything.
void setRefusalScreen(RefusalScreen screen);

}  // namespace sbc::signaling
