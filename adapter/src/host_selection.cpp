#include "host_selection.hpp"

#include "hired/error.hpp"

#include <memory>
#include <utility>

namespace hired {

HostSelection::HostSelection() : state_(std::make_shared<detail::HostSelectionState>()) {}

HostSelection::HostSelection(Selection ready) : HostSelection() {
  state_->value = std::move(ready);
}

HostSelection::HostSelection(std::shared_ptr<detail::HostSelectionState> state)
    : state_(std::move(state)) {}

const Selection& HostSelection::get() const {
  const std::lock_guard lock(state_->mutex);
  if (!state_->value) {
    check(static_cast<bool>(state_->fill), "selection: empty; call select() first");
    state_->value = state_->fill();
    state_->fill = nullptr;
  }
  return *state_->value;
}

bool HostSelection::ready() const {
  const std::lock_guard lock(state_->mutex);
  return state_->value.has_value();
}

HostSelection detail::lazy_host_selection_of(std::shared_ptr<HostSelectionState> state) {
  return HostSelection(std::move(state));
}

HostSelection detail::lazy_host_selection(std::function<Selection()> fill) {
  auto state = std::make_shared<HostSelectionState>();
  state->fill = std::move(fill);
  return lazy_host_selection_of(std::move(state));
}

}  // namespace hired
